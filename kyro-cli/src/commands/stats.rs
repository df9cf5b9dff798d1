//! `kyro stats`: Stats and ListNamespaces of the instance at `--url`.

use kyro_proto::v1 as pb;
use serde_json::{json, Value as Json};

use crate::cli::StatsArgs;
use crate::client::Connection;
use crate::error::CliError;
use crate::output::{human_bytes, Output, Table};

pub async fn run(connection: &Connection, output: Output, args: StatsArgs) -> Result<(), CliError> {
    let mut client = connection.connect().await?;
    let stats = client
        .stats(pb::StatsRequest {})
        .await
        .map_err(|status| CliError::server("Stats", status))?
        .into_inner();
    let tenant = if args.all_tenants { "*" } else { "" };
    let namespaces = client
        .list_namespaces(pb::ListNamespacesRequest {
            tenant: tenant.to_owned(),
        })
        .await
        .map_err(|status| CliError::server("ListNamespaces", status))?
        .into_inner()
        .namespaces;
    let document = json!({
        "instance": stats.instance,
        "dim": stats.dim,
        "metric": stats.metric,
        "namespaces": stats.namespaces,
        "points": stats.points,
        "hot_points": stats.hot_points,
        "cold_segments": stats.cold_segments,
        "cold_bytes": stats.cold_bytes,
        "hot_bytes": stats.hot_bytes,
        "query_cache": stats.query_cache.as_ref().map(cache_json),
        "point_cache": stats.point_cache.as_ref().map(cache_json),
        "fsyncs": stats.fsyncs,
        "synced_writes": stats.synced_writes,
        "fsync_seconds": stats.fsync_seconds,
        "unreachable_points": stats.unreachable_points,
        "namespace_list": namespaces.iter().map(|n| json!({
            "tenant": n.tenant,
            "namespace": n.namespace,
            "points": n.points,
            "hot_points": n.hot_points,
            "cold_segments": n.cold_segments,
            "cold_bytes": n.cold_bytes,
        })).collect::<Vec<_>>(),
    });
    output.print(&document, || human(&stats, &namespaces));
    Ok(())
}

fn cache_json(cache: &pb::CacheStats) -> Json {
    json!({
        "hits": cache.hits,
        "misses": cache.misses,
        "hit_ratio": hit_ratio(cache),
        "insertions": cache.insertions,
        "evictions": cache.evictions,
        "rejected": cache.rejected,
    })
}

fn hit_ratio(cache: &pb::CacheStats) -> Option<f64> {
    let lookups = cache.hits + cache.misses;
    (lookups > 0).then(|| cache.hits as f64 / lookups as f64)
}

fn human(stats: &pb::StatsResponse, namespaces: &[pb::NamespaceInfo]) -> String {
    let mut text = format!(
        "instance    {} ({}-dim, {})\nnamespaces  {}\npoints      {} ({} hot, {} in {} cold segments of {})\n",
        stats.instance,
        stats.dim,
        stats.metric,
        stats.namespaces,
        stats.points,
        stats.hot_points,
        stats.points.saturating_sub(stats.hot_points),
        stats.cold_segments,
        human_bytes(stats.cold_bytes),
    );
    // The instance-wide figures are filled for admin keys only.
    if stats.query_cache.is_some() || stats.fsyncs > 0 {
        text.push_str(&format!("hot tier    {}\n", human_bytes(stats.hot_bytes)));
        for (name, cache) in [
            ("query cache", &stats.query_cache),
            ("point cache", &stats.point_cache),
        ] {
            if let Some(cache) = cache {
                let ratio =
                    hit_ratio(cache).map_or("-".to_owned(), |r| format!("{:.1} %", r * 100.0));
                text.push_str(&format!(
                    "{name} hits {ratio} ({} of {} lookups, {} evictions)\n",
                    cache.hits,
                    cache.hits + cache.misses,
                    cache.evictions
                ));
            }
        }
        text.push_str(&format!(
            "fsyncs      {} covering {} writes, {:.3} s\nunreachable {}\n",
            stats.fsyncs, stats.synced_writes, stats.fsync_seconds, stats.unreachable_points
        ));
    }
    if !namespaces.is_empty() {
        let mut table = Table::new(&["TENANT", "NAMESPACE", "POINTS", "HOT", "SEGMENTS", "COLD"]);
        for n in namespaces {
            table.row(vec![
                n.tenant.clone(),
                n.namespace.clone(),
                n.points.to_string(),
                n.hot_points.to_string(),
                n.cold_segments.to_string(),
                human_bytes(n.cold_bytes),
            ]);
        }
        text.push('\n');
        text.push_str(&table.render());
    }
    text
}
