//! `kyro export`: pages through a namespace with Scroll (ascending doc id,
//! vectors and payloads) into a file, written as `<output>.partial` and
//! renamed when complete, so a failed export never leaves a file that
//! looks whole.

use kyro_proto::v1 as pb;
use serde_json::json;

use crate::cli::ExportArgs;
use crate::client::{instance_shape, Connection};
use crate::error::CliError;
use crate::filter;
use crate::formats::{create_writer, with_suffix, Format};
use crate::output::Output;

pub async fn run(
    connection: &Connection,
    output: Output,
    args: ExportArgs,
) -> Result<(), CliError> {
    let format = Format::resolve(args.format, &args.output)?;
    if format.vectors_only() && args.meta.is_none() {
        output.warn(&format!(
            "{} files hold vectors only: ids and payloads are not exported (add --meta FILE to keep them)",
            format.name()
        ));
    }
    let filter = args
        .filter
        .as_deref()
        .map(filter::parse)
        .transpose()
        .map_err(CliError::usage)?;
    let mut client = connection.connect().await?;
    let dim = match instance_shape(&mut client).await? {
        Some((dim, _)) => dim,
        None => 0,
    };
    let total = client
        .count(pb::CountRequest {
            namespace: args.namespace.clone(),
            filter: filter.clone(),
        })
        .await
        .map_err(|status| CliError::server("Count", status))?
        .into_inner()
        .count;
    let partial = with_suffix(&args.output, ".partial");
    let partial_meta = args.meta.as_deref().map(|m| with_suffix(m, ".partial"));
    let mut writer = create_writer(format, &partial, dim, partial_meta.as_deref())?;
    let bar = output.progress(Some(total), "exporting");
    let mut after = None;
    let mut written = 0u64;
    let result = async {
        loop {
            let page = client
                .scroll(pb::ScrollRequest {
                    namespace: args.namespace.clone(),
                    filter: filter.clone(),
                    after_doc_id: after,
                    limit: args.page_size,
                    with_vector: true,
                    with_payload: Some(true),
                })
                .await
                .map_err(|status| CliError::server("Scroll", status))?
                .into_inner();
            for point in &page.points {
                writer.write(point.doc_id, &point.vector, &point.payload)?;
            }
            written += page.points.len() as u64;
            bar.inc(page.points.len() as u64);
            match page.next_after_doc_id {
                Some(next) => after = Some(next),
                None => return Ok::<(), CliError>(()),
            }
        }
    }
    .await;
    bar.finish_and_clear();
    if let Err(error) = result {
        let _ = std::fs::remove_file(&partial);
        if let Some(meta) = &partial_meta {
            let _ = std::fs::remove_file(meta);
        }
        return Err(error);
    }
    writer.finish()?;
    std::fs::rename(&partial, &args.output).map_err(|e| CliError::io(&args.output, e))?;
    if let (Some(from), Some(to)) = (&partial_meta, &args.meta) {
        std::fs::rename(from, to).map_err(|e| CliError::io(to, e))?;
    }
    output.print(
        &json!({
            "namespace": args.namespace,
            "output": args.output,
            "meta": args.meta,
            "format": format.name(),
            "exported": written,
        }),
        || {
            format!(
                "exported {written} points of {} to {}",
                args.namespace,
                args.output.display()
            )
        },
    );
    Ok(())
}
