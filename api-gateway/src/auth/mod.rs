//! API keys: `em_live_{key id}_{secret}`, stored as scrypt hashes with a
//! per-key salt, looked up by key id and compared in constant time; a
//! 5-minute cache of validated keys, invalidated at once on revoke, suspend
//! or expiry; and the [`Authed`] extractor that turns a request's key into a
//! [`Caller`] after checking scope and rate limit.
//!
//! | module | holds |
//! | --- | --- |
//! | `caller` | [`Scope`] and the authenticated [`Caller`] |
//! | `keys` | the key format, generation and scrypt hashing |
//! | `key_cache` | [`KeyCache`]: validated keys for `CACHE_TTL` |
//! | `endpoint` | [`Endpoint`]s, [`authorize`] and the [`Authed`] extractor |

mod caller;
mod endpoint;
pub mod key_cache;
mod keys;

pub use caller::{Caller, Scope};
pub use endpoint::{
    authorize, AdminEndpoint, Authed, CaptureEndpoint, Endpoint, ReadEndpoint, ReflectEndpoint,
    SearchEndpoint, WriteEndpoint,
};
pub use key_cache::{KeyCache, CACHE_TTL};
pub use keys::{generate_key, parse_key, NewKey, KEY_PREFIX};
