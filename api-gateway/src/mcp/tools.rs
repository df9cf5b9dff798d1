//! The MCP tools: what an assistant sees (names, descriptions written for a
//! model to read, JSON schemas of the arguments) and how each becomes one
//! gateway operation. Failures come back as tool errors (`isError: true`)
//! carrying the gateway's `{"error": {"code", "message", "field"}}`, so a
//! model can read what to fix and try again.

use std::collections::BTreeMap;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::backend::Backend;
use super::operation::{Operation, ToolFailure};
use crate::episodes::model::ErrorClass;

/// Arguments of `record_failure`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RecordFailureArgs {
    /// What you were trying to achieve, in one or two sentences (10 to 2,000 characters).
    pub goal: String,
    /// The tools involved, e.g. ["pip", "python"] (1 to 20 non-empty names).
    pub tool_chain: Vec<String>,
    /// The commands or steps you took, in order (1 to 50).
    pub actions_taken: Vec<String>,
    /// The error output as printed (10 to 20,000 characters). Secrets and personal data are redacted before anything is stored.
    pub error_trace: String,
    /// The kind of failure.
    pub error_class: ErrorClass,
    /// What fixed it, if you know; leave out when still unresolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// Conditions under which it fails, e.g. {"python": "3.12", "os": "linux"}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<BTreeMap<String, String>>,
    /// Environment facts: OS, language and package versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_info: Option<serde_json::Map<String, Value>>,
    /// The relevant code change, as a diff (at most 50,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_state_diff: Option<String>,
    /// Free tags (at most 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// 1 (critical) to 5 (minor); default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<i64>,
    /// The repository or project this happened in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Versions that fix it, e.g. {"numpy": ">=1.26.2"}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_in: Option<BTreeMap<String, String>>,
    /// Send the same key again when retrying this very call: it is then recorded once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Arguments of `search_failures`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SearchFailuresArgs {
    /// What you are about to do or the problem you see, in words.
    pub query: String,
    /// Your current environment, e.g. {"python": "3.12.1"}: episodes whose preconditions match rank higher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_state: Option<BTreeMap<String, String>>,
    /// How many results (1 to 100, default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
    /// Only results at least this similar (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_similarity: Option<f32>,
    /// Only episodes that involved this tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Only episodes of this error class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<ErrorClass>,
    /// Look in this project first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// Arguments of `check_action`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CheckActionArgs {
    /// What you are trying to achieve.
    pub goal: String,
    /// The exact command or change you are about to make.
    pub proposed_action: String,
    /// The tool that will run it, e.g. "pip".
    pub tool: String,
    /// Your current environment, e.g. {"python": "3.12.1"}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_state: Option<BTreeMap<String, String>>,
    /// The project you are working in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// Whether an applied fix worked.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeArg {
    Success,
    StillFailed,
}

/// Arguments of `record_outcome`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RecordOutcomeArgs {
    /// The episode whose suggested fix you applied.
    pub episode_id: u64,
    /// `success` if the fix worked, `still_failed` if not.
    pub outcome: OutcomeArg,
    /// The suggestion you applied, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_suggestion: Option<String>,
    /// Anything worth knowing next time (at most 10,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// Arguments naming one episode.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct EpisodeArgs {
    /// The episode id, as returned by record_failure, search_failures or check_action.
    pub episode_id: u64,
}

/// The tools, over one [`Backend`].
#[derive(Clone)]
pub struct KyroTools {
    backend: Backend,
    tool_router: ToolRouter<KyroTools>,
}

fn to_json(value: &impl Serialize) -> Result<Value, ToolFailure> {
    serde_json::to_value(value).map_err(|e| ToolFailure::internal(e.to_string()))
}

fn finish(result: Result<Value, ToolFailure>) -> CallToolResult {
    match result {
        Ok(value) => CallToolResult::structured(value),
        Err(failure) => CallToolResult::structured_error(failure.to_json()),
    }
}

#[tool_router]
impl KyroTools {
    /// The tools over `backend`.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            tool_router: Self::tool_router(),
        }
    }

    async fn run(
        &self,
        operation: Operation,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let parts = context.extensions.get::<http::request::Parts>();
        finish(self.backend.call(operation, parts).await)
    }

    #[tool(
        description = "Record a failure you ran into (what you tried, the error, and the fix if you found one) so that you and other agents can avoid it next time. Call it after a command or change failed in a way worth remembering. A repeat of an already recorded error is counted on the existing episode instead of stored again (the answer says `linked`). Returns the episode_id."
    )]
    async fn record_failure(
        &self,
        Parameters(args): Parameters<RecordFailureArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let idempotency_key = args.idempotency_key.clone();
        let body = match to_json(&args) {
            Ok(mut body) => {
                if let Some(map) = body.as_object_mut() {
                    map.remove("idempotency_key");
                }
                body
            }
            Err(failure) => return finish(Err(failure)),
        };
        self.run(
            Operation::Capture {
                body,
                idempotency_key,
            },
            &context,
        )
        .await
    }

    #[tool(
        description = "Search recorded failures similar to a problem or plan, best first. Each result has a score, its components (similarity, precondition match, recency, usage), a one-line explanation and the episode with its resolution. Use it to find how a similar error was fixed before."
    )]
    async fn search_failures(
        &self,
        Parameters(args): Parameters<SearchFailuresArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let mut filters = serde_json::Map::new();
        if let Some(tool) = &args.tool {
            filters.insert("tool".to_owned(), Value::from(tool.clone()));
        }
        if let Some(class) = args.error_class {
            match to_json(&class) {
                Ok(class) => filters.insert("error_class".to_owned(), class),
                Err(failure) => return finish(Err(failure)),
            };
        }
        let mut body = serde_json::json!({
            "goal": args.query,
            "k": args.k.unwrap_or(5),
            "filters": filters,
        });
        if let Some(map) = body.as_object_mut() {
            if let Some(state) = args.current_state {
                map.insert("current_state".to_owned(), serde_json::json!(state));
            }
            if let Some(min) = args.min_similarity {
                map.insert("min_similarity".to_owned(), serde_json::json!(min));
            }
            if let Some(project) = args.project {
                map.insert("project".to_owned(), Value::from(project));
            }
        }
        self.run(Operation::Search { body }, &context).await
    }

    #[tool(
        description = "Before running a command or making a change, ask whether it failed before. Answers a decision: `block` (this very action failed before: do not run it, apply suggested_action instead), `warn` (a close match failed: read the matched episodes first), `hint` (something related failed: consider the suggestion), or `proceed` (nothing similar is recorded). Includes a confidence, a rationale, the matched episodes and a suggested_action when a stored fix exists."
    )]
    async fn check_action(
        &self,
        Parameters(args): Parameters<CheckActionArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        match to_json(&args) {
            Ok(body) => self.run(Operation::Reflect { body }, &context).await,
            Err(failure) => finish(Err(failure)),
        }
    }

    #[tool(
        description = "After applying the fix an episode suggested, report whether it worked. Fixes that keep working rank higher and become skills; fixes that fail rank lower."
    )]
    async fn record_outcome(
        &self,
        Parameters(args): Parameters<RecordOutcomeArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        match to_json(&args) {
            Ok(body) => self.run(Operation::ValidateFix { body }, &context).await,
            Err(failure) => finish(Err(failure)),
        }
    }

    #[tool(
        description = "Read one recorded failure episode in full: goal, actions, redacted error trace, resolution, occurrences, fix success counts."
    )]
    async fn get_episode(
        &self,
        Parameters(args): Parameters<EpisodeArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.run(
            Operation::Get {
                id: args.episode_id,
            },
            &context,
        )
        .await
    }

    #[tool(
        description = "Erase a recorded failure episode for good (for example one recorded by mistake or holding something that must not be kept). It disappears from search at once."
    )]
    async fn forget_episode(
        &self,
        Parameters(args): Parameters<EpisodeArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.run(
            Operation::Delete {
                id: args.episode_id,
            },
            &context,
        )
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for KyroTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "kyrodb",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "KyroDB is a failure memory for coding agents. Before running a risky command, call check_action; when something fails, call record_failure; after applying a suggested fix, call record_outcome.",
            )
    }
}
