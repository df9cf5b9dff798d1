//! `kyro import`: reads records, checks them against the instance (so a
//! bad line is named before anything is sent), sends them in BulkInsert
//! calls of `--batch-size` points, and checkpoints each acknowledged call.

use std::path::Path;
use std::time::Duration;

use kyro_proto::v1 as pb;
use serde_json::json;

use crate::checkpoint::{now, Checkpoint};
use crate::cli::ImportArgs;
use crate::client::{instance_shape, Client, Connection};
use crate::error::{is_transport_failure, CliError};
use crate::formats::{open_reader, Format, Place, Record};
use crate::output::Output;

/// Refused points listed in an error message; the rest are counted.
const LISTED_REFUSALS: usize = 5;

pub async fn run(
    connection: &Connection,
    output: Output,
    args: ImportArgs,
) -> Result<(), CliError> {
    let format = Format::resolve(args.format, &args.input)?;
    let input = std::path::absolute(&args.input).map_err(|e| CliError::io(&args.input, e))?;
    let checkpoint_path = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| Checkpoint::default_path(&args.input));
    let fresh = Checkpoint {
        version: 1,
        input,
        format,
        namespace: args.namespace.clone(),
        url: connection.url.clone(),
        acknowledged: 0,
        batches: 0,
        updated_at: now(),
    };
    let mut state = match (Checkpoint::read(&checkpoint_path)?, args.resume) {
        (Some(earlier), false) => {
            return Err(CliError::usage(format!(
                "{}: an earlier import of this file stopped after {} acknowledged records; pass --resume to continue it, or delete the checkpoint to start over",
                checkpoint_path.display(),
                earlier.acknowledged
            )))
        }
        (Some(earlier), true) => {
            earlier.check_matches(&checkpoint_path, &fresh)?;
            output.note(&format!(
                "resuming after {} acknowledged records ({})",
                earlier.acknowledged,
                checkpoint_path.display()
            ));
            earlier
        }
        (None, true) => {
            output.note(&format!(
                "no checkpoint at {}: importing from the start",
                checkpoint_path.display()
            ));
            fresh
        }
        (None, false) => fresh,
    };
    let resumed_at = state.acknowledged;
    let mut reader = open_reader(format, &args.input, args.meta.as_deref())?;
    let mut client = connection.connect().await?;
    let shape = instance_shape(&mut client).await?;
    if state.acknowledged > 0 {
        reader.skip(state.acknowledged)?;
    }
    let bar = output.progress(reader.total(), "importing");
    bar.set_position(state.acknowledged);
    let batch = Batcher {
        args: &args,
        shape: shape.as_ref(),
        url: &connection.url,
    };
    let result = async {
        loop {
            let (points, places) = batch.read(&mut *reader, state.acknowledged)?;
            if points.is_empty() {
                return Ok::<(), CliError>(());
            }
            let count = points.len() as u64;
            send(&mut client, &args, points, &places).await?;
            state.acknowledged += count;
            state.batches += 1;
            state.updated_at = now();
            state.write(&checkpoint_path)?;
            bar.inc(count);
        }
    }
    .await;
    bar.finish_and_clear();
    if let Err(error) = result {
        if state.acknowledged > 0 {
            eprintln!(
                "kyro: {} records of {} are imported and checkpointed in {}; fix the cause and rerun with --resume to continue after them",
                state.acknowledged,
                args.input.display(),
                checkpoint_path.display()
            );
        }
        return Err(error);
    }
    match std::fs::remove_file(&checkpoint_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CliError::io(&checkpoint_path, e)),
    }
    let imported = state.acknowledged - resumed_at;
    output.print(
        &json!({
            "namespace": args.namespace,
            "input": args.input,
            "format": format.name(),
            "imported": imported,
            "resumed_after": resumed_at,
            "total": state.acknowledged,
            "batches": state.batches,
        }),
        || {
            let resumed = if resumed_at > 0 {
                format!(" (resumed after {resumed_at})")
            } else {
                String::new()
            };
            format!(
                "imported {imported} points into {}{resumed}; {} in all from {}",
                args.namespace,
                state.acknowledged,
                args.input.display()
            )
        },
    );
    Ok(())
}

/// Where a point of a batch came from: its place in the file and its id.
type Origin = (Place, u64);

/// Reads and checks one batch.
struct Batcher<'a> {
    args: &'a ImportArgs,
    shape: Option<&'a (usize, String)>,
    url: &'a str,
}

impl Batcher<'_> {
    /// Up to `--batch-size` points; `position` is how many records came
    /// before (for ids of records without one).
    fn read(
        &self,
        reader: &mut dyn crate::formats::RecordReader,
        mut position: u64,
    ) -> Result<(Vec<pb::Point>, Vec<Origin>), CliError> {
        let mut points = Vec::with_capacity(self.args.batch_size as usize);
        let mut places = Vec::with_capacity(self.args.batch_size as usize);
        while points.len() < self.args.batch_size as usize {
            let Some(record) = reader.next_record()? else {
                break;
            };
            self.check(&record)?;
            let doc_id = match record.id {
                Some(id) => id,
                None => self.args.id_start.checked_add(position).ok_or_else(|| {
                    CliError::input_at(
                        &self.args.input,
                        record.place,
                        "--id-start plus the position overflows u64",
                    )
                })?,
            };
            position += 1;
            places.push((record.place, doc_id));
            points.push(pb::Point {
                doc_id,
                vector: record.vector,
                payload: record.payload,
            });
        }
        Ok((points, places))
    }

    /// The checks the server would make on the vector, made first so the
    /// error names the line.
    fn check(&self, record: &Record) -> Result<(), CliError> {
        let fail = |message: String| CliError::input_at(&self.args.input, record.place, message);
        if let Some((dim, metric)) = self.shape {
            if record.vector.len() != *dim {
                return Err(fail(format!(
                    "the vector has {} dimensions; the instance at {} has {dim}",
                    record.vector.len(),
                    self.url
                )));
            }
            if metric == "cosine" && record.vector.iter().all(|&x| x == 0.0) {
                return Err(fail(
                    "the vector is all zeros, which has no direction under the cosine metric"
                        .into(),
                ));
            }
        }
        if let Some((i, x)) = record
            .vector
            .iter()
            .enumerate()
            .find(|(_, x)| !x.is_finite())
        {
            return Err(fail(format!("vector component {i} is not finite ({x})")));
        }
        Ok(())
    }
}

/// One BulkInsert call holding `points`, retried on UNAVAILABLE and
/// RESOURCE_EXHAUSTED; any refused point fails the import, naming it.
async fn send(
    client: &mut Client,
    args: &ImportArgs,
    points: Vec<pb::Point>,
    places: &[Origin],
) -> Result<(), CliError> {
    let mut attempt = 0;
    let response = loop {
        let message = pb::BulkInsertRequest {
            namespace: args.namespace.clone(),
            points: points.clone(),
        };
        let stream = tokio_stream::iter(vec![message]);
        match client.bulk_insert(stream).await {
            Ok(response) => break response.into_inner(),
            Err(status)
                if attempt < args.retries
                    && (is_transport_failure(&status)
                        || status.code() == tonic::Code::ResourceExhausted) =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            Err(status) => return Err(CliError::server("BulkInsert", status)),
        }
    };
    if response.failed == 0 {
        return Ok(());
    }
    Err(refusal(&args.input, &response, places))
}

fn refusal(input: &Path, response: &pb::BulkInsertResponse, places: &[Origin]) -> CliError {
    let mut message = format!(
        "{}: the server refused {} of the {} points of the batch from {} to {}:",
        input.display(),
        response.failed,
        places.len(),
        places.first().map_or(String::new(), |p| p.0.to_string()),
        places.last().map_or(String::new(), |p| p.0.to_string()),
    );
    for error in response.errors.iter().take(LISTED_REFUSALS) {
        let place = places
            .get(error.index as usize)
            .map_or_else(|| format!("point {}", error.index), |p| p.0.to_string());
        message.push_str(&format!(
            "\n  {place} (doc id {}): {}",
            error.doc_id, error.message
        ));
    }
    if response.failed as usize > LISTED_REFUSALS {
        message.push_str(&format!(
            "\n  … and {} more",
            response.failed as usize - LISTED_REFUSALS
        ));
    }
    CliError::Refused(message)
}
