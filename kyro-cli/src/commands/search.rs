//! `kyro search`: one Search with a vector from a file, from the command
//! line, or embedded from text by the gateway.

use std::path::Path;

use kyro_proto::v1 as pb;
use serde_json::{json, Value as Json};

use crate::cli::SearchArgs;
use crate::client::Connection;
use crate::error::CliError;
use crate::filter;
use crate::formats::{open_reader, Format};
use crate::http::Gateway;
use crate::output::{Output, Table};
use crate::payload;

pub async fn run(
    connection: &Connection,
    gateway: &Gateway,
    output: Output,
    args: SearchArgs,
) -> Result<(), CliError> {
    let vector = query_vector(gateway, &args)?;
    let filter = args
        .filter
        .as_deref()
        .map(filter::parse)
        .transpose()
        .map_err(CliError::usage)?;
    let mut client = connection.connect().await?;
    let response = client
        .search(pb::SearchRequest {
            namespace: args.namespace.clone(),
            vector,
            k: args.k,
            ef: args.ef,
            filter,
            min_score: args.min_score,
            with_vector: args.with_vector,
            with_payload: Some(true),
        })
        .await
        .map_err(|status| CliError::server("Search", status))?
        .into_inner();
    let hits: Vec<Json> = response
        .hits
        .iter()
        .map(|hit| {
            let mut value = json!({
                "doc_id": hit.doc_id,
                "score": hit.score,
                "distance": hit.distance,
                "payload": payload::to_json(&hit.payload),
            });
            if args.with_vector {
                value["vector"] = json!(hit.vector);
            }
            value
        })
        .collect();
    let document = json!({
        "hits": hits,
        "plan": response.plan,
        "candidates": response.candidates,
        "cached": response.cached,
    });
    output.print(&document, || {
        let mut table = Table::new(&["RANK", "DOC_ID", "SCORE", "DISTANCE", "PAYLOAD"]);
        for (rank, hit) in response.hits.iter().enumerate() {
            table.row(vec![
                (rank + 1).to_string(),
                hit.doc_id.to_string(),
                format!("{:.4}", hit.score),
                format!("{:.4}", hit.distance),
                Json::Object(payload::to_json(&hit.payload)).to_string(),
            ]);
        }
        format!(
            "{}{} hits ({} plan, {} candidates{})",
            table.render(),
            response.hits.len(),
            response.plan,
            response.candidates,
            if response.cached { ", cached" } else { "" }
        )
    });
    Ok(())
}

/// The query vector from whichever of --query, --vector, --text was given.
fn query_vector(gateway: &Gateway, args: &SearchArgs) -> Result<Vec<f32>, CliError> {
    if let Some(path) = &args.query {
        return vector_from_file(path, args.row);
    }
    if let Some(text) = &args.vector {
        return serde_json::from_str::<Vec<f32>>(text).map_err(|e| {
            CliError::usage(format!("--vector: expected a JSON array of numbers: {e}"))
        });
    }
    if let Some(text) = &args.text {
        return embed(gateway, text);
    }
    Err(CliError::usage(
        "give the query as --query FILE, --vector '[…]' or --text '…'",
    ))
}

/// Row `row` of an fvecs/npy/jsonl file, or the vector of a .json file.
fn vector_from_file(path: &Path, row: u64) -> Result<Vec<f32>, CliError> {
    let is_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        let text = std::fs::read_to_string(path).map_err(|e| CliError::io(path, e))?;
        let json: Json = serde_json::from_str(&text)
            .map_err(|e| CliError::input(path, format!("not JSON: {e}")))?;
        let vector = match &json {
            Json::Object(object) => object.get("vector").unwrap_or(&Json::Null),
            other => other,
        };
        return serde_json::from_value::<Vec<f32>>(vector.clone()).map_err(|_| {
            CliError::input(
                path,
                "expected an array of numbers, or an object with a \"vector\" array",
            )
        });
    }
    let format = Format::resolve(None, path)?;
    let mut reader = open_reader(format, path, None)?;
    reader
        .skip(row)
        .map_err(|_| CliError::input(path, format!("has no row {row}")))?;
    match reader.next_record()? {
        Some(record) => Ok(record.vector),
        None => Err(CliError::input(path, format!("has no row {row}"))),
    }
}

/// Embeds `text` with the gateway's `POST /api/v1/embeddings`.
fn embed(gateway: &Gateway, text: &str) -> Result<Vec<f32>, CliError> {
    let answer = gateway.call("POST", "/api/v1/embeddings", Some(&json!({"input": text})))?;
    serde_json::from_value(answer["data"][0]["embedding"].clone()).map_err(|_| CliError::Connect {
        what: "the gateway",
        url: gateway.url.clone(),
        reason: "the embeddings answer has no data[0].embedding array".into(),
    })
}
