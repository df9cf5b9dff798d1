//! Failure episodes: the capture body and its limits (`model`), capture
//! (`capture`), reading, deleting, fix feedback and skills (`view`), search
//! and reflect (`retrieval`) and how results are ranked (`ranking`).

pub mod capture;
pub mod model;
pub mod ranking;
pub mod retrieval;
pub mod view;
