//! `kyro keys`: the gateway's key administration (`docs/gateway.md`,
//! "Customers, keys, quotas"), with an admin key.

use serde_json::{json, Value as Json};

use crate::cli::KeysAction;
use crate::error::CliError;
use crate::http::Gateway;
use crate::output::{Output, Table};

pub fn run(gateway: &Gateway, output: Output, action: KeysAction) -> Result<(), CliError> {
    if gateway.key.is_none() {
        return Err(CliError::usage(
            "kyro keys needs the gateway's admin key: --gateway-key or KYRO_GATEWAY_KEY",
        ));
    }
    match action {
        KeysAction::List { customer } => {
            let answer =
                gateway.call("GET", &format!("/api/v1/customers/{customer}/keys"), None)?;
            output.print(&answer, || {
                let mut table = Table::new(&[
                    "KEY_ID", "SCOPES", "PROJECT", "CREATED", "EXPIRES", "REVOKED",
                ]);
                for key in answer["keys"].as_array().into_iter().flatten() {
                    table.row(vec![
                        text(&key["key_id"]),
                        key["scopes"]
                            .as_array()
                            .map(|s| s.iter().map(text).collect::<Vec<_>>().join(","))
                            .unwrap_or_default(),
                        text(&key["project"]),
                        text(&key["created_at"]),
                        text(&key["expires_at"]),
                        text(&key["revoked_at"]),
                    ]);
                }
                table.render()
            });
        }
        KeysAction::Create {
            customer,
            scopes,
            project,
            expires_at,
        } => {
            let mut body = json!({"scopes": scopes});
            if let Some(project) = project {
                body["project"] = json!(project);
            }
            if let Some(expires_at) = expires_at {
                body["expires_at"] = json!(expires_at);
            }
            let answer = gateway.call(
                "POST",
                &format!("/api/v1/customers/{customer}/keys"),
                Some(&body),
            )?;
            output.print(&answer, || {
                format!(
                    "{}\n(key id {}; the key is shown only now)",
                    text(&answer["api_key"]),
                    text(&answer["key_id"])
                )
            });
        }
        KeysAction::Revoke { key_id } => {
            gateway.call("DELETE", &format!("/api/v1/keys/{key_id}"), None)?;
            output.print(&json!({"key_id": key_id, "revoked": true}), || {
                format!("revoked {key_id}")
            });
        }
    }
    Ok(())
}

/// A JSON value as a table cell: strings bare, null as `-`.
fn text(value: &Json) -> String {
    match value {
        Json::Null => "-".into(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}
