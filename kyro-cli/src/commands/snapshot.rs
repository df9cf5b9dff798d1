//! `kyro snapshot`: `create` asks the server (CreateSnapshot, admin);
//! `list` and `restore` work on the server's data directory, on its
//! machine, because that is where snapshots live and because a restore
//! needs the server stopped (the server offers no RPC for either).
//! `restore` moves the instance's directory aside and runs
//! `kyro-server restore`, the one implementation of a restore.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kyro_proto::v1 as pb;
use serde_json::json;

use crate::checkpoint::now;
use crate::cli::{SnapshotAction, SnapshotDirArgs};
use crate::client::Connection;
use crate::error::CliError;
use crate::output::{human_bytes, utc_timestamp, Output, Table};

/// The file that marks a directory as a snapshot (written by the engine).
const MARKER: &str = "KYRO_SNAPSHOT";

pub async fn run(
    connection: &Connection,
    output: Output,
    action: SnapshotAction,
) -> Result<(), CliError> {
    match action {
        SnapshotAction::Create { name } => {
            let mut client = connection.connect().await?;
            let created = client
                .create_snapshot(pb::CreateSnapshotRequest {
                    name: name.unwrap_or_default(),
                })
                .await
                .map_err(|status| CliError::server("CreateSnapshot", status))?
                .into_inner();
            output.print(&json!({"name": created.name, "path": created.path}), || {
                format!(
                    "snapshot {} written on the server at {}",
                    created.name, created.path
                )
            });
            Ok(())
        }
        SnapshotAction::List(dir) => list(output, &dir),
        SnapshotAction::Restore {
            snapshot,
            dir,
            instance_dir,
            config,
            server_bin,
            skip_server_check,
        } => {
            let snapshot = resolve(&dir, &snapshot)?;
            if !skip_server_check {
                refuse_if_listening(&connection.url)?;
            }
            let target = instance_dir.unwrap_or_else(|| dir.data_dir.join(&dir.instance));
            let moved = move_aside(&target)?;
            let binary = server_binary(server_bin)?;
            let mut command = Command::new(&binary);
            if let Some(config) = &config {
                command.arg("--config").arg(config);
            }
            command
                .arg("--data-dir")
                .arg(&dir.data_dir)
                .args(["restore", "--instance", &dir.instance, "--from"])
                .arg(&snapshot);
            let result = command
                .output()
                .map_err(|e| CliError::External(format!("cannot run {}: {e}", binary.display())))?;
            if !result.status.success() {
                let mut message = format!(
                    "{} restore failed ({}): {}",
                    binary.display(),
                    result.status,
                    String::from_utf8_lossy(&result.stderr).trim()
                );
                if let Some(moved) = &moved {
                    if is_empty_or_absent(&target) {
                        let _ = std::fs::remove_dir(&target);
                        if std::fs::rename(moved, &target).is_ok() {
                            message.push_str("; the instance's directory was put back");
                        }
                    } else {
                        message.push_str(&format!(
                            "; the instance's previous directory is at {}",
                            moved.display()
                        ));
                    }
                }
                return Err(CliError::External(message));
            }
            output.print(
                &json!({
                    "snapshot": snapshot,
                    "instance": dir.instance,
                    "restored_into": target,
                    "previous_moved_to": moved,
                }),
                || {
                    let mut text = format!(
                        "restored {} into {}",
                        snapshot.display(),
                        target.display()
                    );
                    if let Some(moved) = &moved {
                        text.push_str(&format!(
                            "\nthe previous directory is at {} (delete it once the server runs well)",
                            moved.display()
                        ));
                    }
                    text.push_str("\nstart kyro-server again to serve it");
                    text
                },
            );
            Ok(())
        }
    }
}

fn snapshots_dir(dir: &SnapshotDirArgs) -> PathBuf {
    dir.data_dir.join("snapshots").join(&dir.instance)
}

fn list(output: Output, dir: &SnapshotDirArgs) -> Result<(), CliError> {
    let root = snapshots_dir(dir);
    let mut snapshots = Vec::new();
    match std::fs::read_dir(&root) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|e| CliError::io(&root, e))?;
                let path = entry.path();
                let marker = path.join(MARKER);
                let Ok(text) = std::fs::read_to_string(&marker) else {
                    continue;
                };
                let field = |key: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                        .unwrap_or("")
                        .to_owned()
                };
                let created = std::fs::metadata(&marker)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                snapshots.push(json!({
                    "name": entry.file_name().to_string_lossy(),
                    "path": path,
                    "created_at": utc_timestamp(created),
                    "dim": field("dim").parse::<u64>().ok(),
                    "metric": field("metric"),
                    "bytes": dir_size(&path),
                }));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CliError::io(&root, e)),
    }
    snapshots.sort_by(|a, b| a["created_at"].as_str().cmp(&b["created_at"].as_str()));
    output.print(&json!({"directory": root, "snapshots": snapshots}), || {
        if snapshots.is_empty() {
            return format!("no snapshots in {}", root.display());
        }
        let mut table = Table::new(&["NAME", "CREATED", "DIM", "METRIC", "SIZE"]);
        for s in &snapshots {
            table.row(vec![
                s["name"].as_str().unwrap_or("").to_owned(),
                s["created_at"].as_str().unwrap_or("").to_owned(),
                s["dim"].to_string(),
                s["metric"].as_str().unwrap_or("").to_owned(),
                human_bytes(s["bytes"].as_u64().unwrap_or(0)),
            ]);
        }
        table.render()
    });
    Ok(())
}

/// Bytes of the files under `path` (hard links to segment files counted).
fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_size(&entry.path()),
            _ => entry.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// A snapshot name (in the instance's snapshot directory) or a path.
fn resolve(dir: &SnapshotDirArgs, snapshot: &str) -> Result<PathBuf, CliError> {
    let by_name = snapshots_dir(dir).join(snapshot);
    let path = if !snapshot.contains('/') && by_name.exists() {
        by_name
    } else {
        PathBuf::from(snapshot)
    };
    if !path.join(MARKER).is_file() {
        return Err(CliError::usage(format!(
            "{}: not a snapshot (no {MARKER} file); `kyro snapshot list` shows those of {}",
            path.display(),
            snapshots_dir(dir).display()
        )));
    }
    Ok(path)
}

/// Refuses while something accepts connections at the server's address.
fn refuse_if_listening(url: &str) -> Result<(), CliError> {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or("");
    let Ok(addresses) = host.to_socket_addrs() else {
        return Ok(());
    };
    for address in addresses {
        if TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok() {
            return Err(CliError::usage(format!(
                "something answers at {url}: stop kyro-server before restoring (or pass --skip-server-check if that is another server)"
            )));
        }
    }
    Ok(())
}

fn is_empty_or_absent(path: &Path) -> bool {
    std::fs::read_dir(path).map_or(true, |mut d| d.next().is_none())
}

/// Moves a non-empty instance directory to
/// `<dir>.before-restore-<seconds>`; where it went.
fn move_aside(target: &Path) -> Result<Option<PathBuf>, CliError> {
    if is_empty_or_absent(target) {
        return Ok(None);
    }
    let mut name = target.file_name().unwrap_or_default().to_owned();
    name.push(format!(".before-restore-{}", now()));
    let moved = target.with_file_name(name);
    std::fs::rename(target, &moved).map_err(|e| CliError::io(target, e))?;
    Ok(Some(moved))
}

/// `--server-bin`, else `KYRO_SERVER_BIN`, else `kyro-server` beside this
/// executable, else `kyro-server` on PATH.
fn server_binary(flag: Option<PathBuf>) -> Result<PathBuf, CliError> {
    if let Some(path) = flag.or_else(|| std::env::var_os("KYRO_SERVER_BIN").map(PathBuf::from)) {
        return Ok(path);
    }
    if let Some(beside) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("kyro-server")))
        .filter(|path| path.is_file())
    {
        return Ok(beside);
    }
    Ok(PathBuf::from("kyro-server"))
}
