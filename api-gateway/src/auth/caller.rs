//! What a key may do ([`Scope`]) and who a request's key belongs to
//! ([`Caller`]).

use crate::store::Customer;

/// What a key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read episodes, search, reflect, skills, embeddings.
    Read,
    /// Capture, delete, validate_fix.
    Write,
    /// The admin API.
    Admin,
    /// Only search and reflect (agents that must not write).
    Gate,
}

impl Scope {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
            Scope::Gate => "gate",
        }
    }

    /// Parses a stored or requested scope name.
    pub fn parse(name: &str) -> Option<Scope> {
        match name {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            "gate" => Some(Scope::Gate),
            _ => None,
        }
    }
}

/// A request's authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub customer: Customer,
    pub scopes: Vec<Scope>,
    /// A key limited to one project sees and writes only that project.
    pub project: Option<String>,
    /// The client's address (for the audit log).
    pub address: Option<String>,
}

impl Caller {
    /// Whether the key has `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}
