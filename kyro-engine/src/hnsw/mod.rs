//! A from-scratch HNSW graph index (Malkov & Yashunin, 2016).
//!
//! - [`params`]: [`HnswParams`], the construction parameters.
//! - [`layout`]: the flat, mmap-ready arrays the graph and vectors live in.
//! - [`search`]: greedy descent, layer search and neighbour selection.
//! - [`graph`]: [`HnswIndex`] itself — insert, parallel build, search, delete
//!   and repair.

mod graph;
mod layout;
pub(crate) mod params;
pub(crate) mod search;

pub use graph::{Consolidation, GraphExport, HnswIndex};
pub use params::HnswParams;
