//! PII redaction: applied to every text of a capture (and to queries) before
//! anything is embedded, stored or logged. Each kind of secret or personal
//! datum is one rule of a table; matching is linear-time (the `regex`
//! crate), and a match is replaced by `[REDACTED:<kind>]`. Only counts per
//! kind are reported, never the values.
//!
//! Innocent text stays: commit hashes, UUIDs, version strings, file paths
//! without user names, timestamps.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// How many matches of each kind were removed.
pub type RedactionCounts = BTreeMap<&'static str, u64>;

/// One rule: what the regex finds, and how a match is rewritten (`None`:
/// the candidate failed a check and is left as it is).
struct Rule {
    kind: &'static str,
    regex: Regex,
    rewrite: fn(&Captures<'_>, &'static str) -> Option<String>,
}

fn whole(_: &Captures<'_>, kind: &'static str) -> Option<String> {
    Some(marker(kind))
}

fn marker(kind: &str) -> String {
    format!("[REDACTED:{kind}]")
}

/// Keeps group 1 (a name, a scheme, a path prefix) and redacts the rest.
fn keep_prefix(captures: &Captures<'_>, kind: &'static str) -> Option<String> {
    let prefix = captures.get(1).map_or("", |m| m.as_str());
    let value = captures.get(2).map_or("", |m| m.as_str());
    if value.starts_with("[REDACTED") || value.trim_matches(['"', '\'']).is_empty() {
        return None;
    }
    Some(format!("{prefix}{}", marker(kind)))
}

fn luhn_card(captures: &Captures<'_>, kind: &'static str) -> Option<String> {
    let digits: Vec<u32> = captures[0].chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return None;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10).then(|| marker(kind))
}

/// Group 1: the character before, group 2: the address, group 3: a
/// further `.digit` (then it is a version, not an address).
fn ipv4(captures: &Captures<'_>, kind: &'static str) -> Option<String> {
    if captures.get(3).is_some() {
        return None;
    }
    let ok = captures[2].split('.').all(|octet| {
        octet.parse::<u16>().is_ok_and(|n| n <= 255) && (octet == "0" || !octet.starts_with('0'))
    });
    ok.then(|| format!("{}{}", &captures[1], marker(kind)))
}

/// Group 1: the character before (not part of a word or a path such as
/// `std::io`), group 2: the candidate, accepted when it parses as IPv6 and
/// holds at least two groups and four hex digits.
fn ipv6(captures: &Captures<'_>, kind: &'static str) -> Option<String> {
    let text = &captures[2];
    let groups: Vec<&str> = text.split(':').filter(|g| !g.is_empty()).collect();
    let digits: usize = groups.iter().map(|g| g.len()).sum();
    let plausible = (text.contains("::") || groups.len() == 8) && groups.len() >= 2 && digits >= 4;
    (plausible && text.parse::<Ipv6Addr>().is_ok())
        .then(|| format!("{}{}", &captures[1], marker(kind)))
}

/// An AWS secret key standing alone: 40 base64 characters with both
/// cases and a digit (a commit hash is lower-case hex and never matches).
fn aws_secret(captures: &Captures<'_>, kind: &'static str) -> Option<String> {
    let text = &captures[0];
    let upper = text.bytes().any(|b| b.is_ascii_uppercase());
    let lower = text.bytes().any(|b| b.is_ascii_lowercase());
    let digit = text.bytes().any(|b| b.is_ascii_digit());
    (upper && lower && digit).then(|| marker(kind))
}

fn rule(
    kind: &'static str,
    pattern: &str,
    rewrite: fn(&Captures<'_>, &'static str) -> Option<String>,
) -> Rule {
    Rule {
        kind,
        // The patterns are constants, covered by the tests below.
        regex: Regex::new(pattern).unwrap_or_else(|e| panic!("redaction rule {kind}: {e}")),
        rewrite,
    }
}

/// The rules, in the order they run: multi-line and specific formats first,
/// so that a generic rule never sees half of a specific one.
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        rule(
            "private_key",
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
            whole,
        ),
        rule(
            "ssh_key",
            r"\b(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com) AAAA[A-Za-z0-9+/]+=*",
            whole,
        ),
        rule(
            "jwt",
            r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
            whole,
        ),
        rule("api_key", r"\bem_live_[A-Za-z0-9]+_[A-Za-z0-9]+", whole),
        rule("api_key", r"\bsk_(?:live|test)_[A-Za-z0-9]{8,}", whole),
        rule(
            "api_key",
            r"\bsk-(?:[A-Za-z0-9_-]+-)?[A-Za-z0-9]{16,}",
            whole,
        ),
        rule(
            "github_token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
            whole,
        ),
        rule("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", whole),
        rule(
            "aws_access_key",
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b",
            whole,
        ),
        rule(
            "aws_secret_key",
            r#"(?i)(aws_secret_access_key["']?\s*[:=]\s*["']?)([A-Za-z0-9/+=]{40})"#,
            keep_prefix,
        ),
        rule(
            "aws_secret_key",
            r"(?:^|\b)[A-Za-z0-9/+]{40}(?:\b|$)",
            aws_secret,
        ),
        rule(
            "bearer_token",
            r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/=-]{8,})",
            keep_prefix,
        ),
        rule(
            "url_credentials",
            r"(?i)(\b[a-z][a-z0-9+.-]*://)([^\s/:@]+:[^\s/@]+)@",
            |c, kind| Some(format!("{}{}@", &c[1], marker(kind))),
        ),
        rule(
            "password",
            r#"(?i)(\b(?:password|passwd|pwd|pass|secret|client_secret|api[_-]?key|access[_-]?token|auth[_-]?token|token)["']?\s*[:=]\s*)("[^"\n]*"|'[^'\n]*'|[^\s,;&"']+)"#,
            keep_prefix,
        ),
        rule(
            "email",
            r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
            whole,
        ),
        rule(
            "home_path",
            r"(/home/|/Users/|(?i:[a-z]:\\Users\\))([^/\\\s]+)",
            |c, kind| {
                let user = &c[2];
                if user.starts_with("[REDACTED") || user == "Shared" || user == "Public" {
                    return None;
                }
                Some(format!("{}{}", &c[1], marker(kind)))
            },
        ),
        rule("ssn", r"\b\d{3}-\d{2}-\d{4}\b", whole),
        rule("card_number", r"\b(?:\d[ -]?){12,18}\d\b", luhn_card),
        // Not part of a longer dotted version (1.2.3.4.5) nor preceded by
        // a letter (v1.2.3.4).
        rule(
            "ip_address",
            r"(^|[^\w.])(\d{1,3}(?:\.\d{1,3}){3})\b(\.\d)?",
            ipv4,
        ),
        rule(
            "ip_address",
            r"(?i)(^|[^\w:.])((?:[0-9a-f]{1,4}:){1,7}(?:(?::[0-9a-f]{1,4}){1,7}|[0-9a-f]{1,4}|:)|::[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})",
            ipv6,
        ),
    ]
});

/// Redacts `text`, adding what it removed to `counts`.
pub fn redact(text: &str, counts: &mut RedactionCounts) -> String {
    let mut current = text.to_owned();
    for rule in RULES.iter() {
        if !rule.regex.is_match(&current) {
            continue;
        }
        let mut found = 0u64;
        let replaced = rule.regex.replace_all(&current, |captures: &Captures<'_>| {
            match (rule.rewrite)(captures, rule.kind) {
                Some(replacement) => {
                    found += 1;
                    replacement
                }
                None => captures[0].to_owned(),
            }
        });
        if found > 0 {
            *counts.entry(rule.kind).or_insert(0) += found;
            current = replaced.into_owned();
        }
    }
    current
}

/// Redacts every string (and object key) inside a JSON value.
pub fn redact_json(value: &mut serde_json::Value, counts: &mut RedactionCounts) {
    match value {
        serde_json::Value::String(text) => *text = redact(text, counts),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| redact_json(v, counts)),
        serde_json::Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut inner) in entries {
                redact_json(&mut inner, counts);
                map.insert(redact(&key, counts), inner);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, kind that must be found, a fragment that must be gone)
    const SECRETS: &[(&str, &str, &str)] = &[
        ("contact jane.doe@example.com now", "email", "jane.doe@example.com"),
        ("key em_live_0123456789abcdef_aabbccddeeff00112233445566778899aabbccddeeff0011", "api_key", "0123456789abcdef_aabb"),
        ("OPENAI sk-proj-abcdefghijklmnopqrstuvwxyz123456", "api_key", "abcdefghijklmnop"),
        ("OPENAI_API_KEY=sk-abcdefghijklmnopqrstu12345", "api_key", "sk-abcdef"),
        ("stripe sk_live_51HxYzABCdefGHIjkl", "api_key", "51HxYzABCdefGHIjkl"),
        ("aws AKIAIOSFODNN7EXAMPLE here", "aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_key", "wJalrXUtnFEMI"),
        ("secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY end", "aws_secret_key", "wJalrXUtnFEMI"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "github_token", "ghp_abcdefghij"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_token", "github_pat_11ABCDEFG"),
        ("slack xoxb-123456789012-abcdefghijkl", "slack_token", "xoxb-123456789012"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt", "eyJzdWIiOiIxMjM0In0"),
        ("Authorization: Bearer abc123def456ghi789", "bearer_token", "abc123def456ghi789"),
        ("db password=hunter2 failed", "password", "hunter2"),
        ("secret: \"correct horse battery\"", "password", "correct horse"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----", "private_key", "MIIEowIBAAKCAQEA7"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n", "private_key", "b3BlbnNzaC1rZXktdjEAAAAA"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host", "ssh_key", "AAAAC3NzaC1lZDI1NTE5"),
        ("clone https://bob:s3cretpw@git.example.com/repo.git", "url_credentials", "s3cretpw"),
        ("postgres://admin:pa55@db.internal:5432/app", "url_credentials", "pa55"),
        ("File \"/home/alice/project/main.py\", line 3", "home_path", "alice"),
        ("at /Users/bob.smith/src/app.ts:10", "home_path", "bob.smith"),
        ("C:\\Users\\Carol\\AppData\\x.dll", "home_path", "Carol"),
        ("connect to 192.168.1.20:8080 refused", "ip_address", "192.168.1.20"),
        ("peer 2001:db8:85a3::8a2e:370:7334 reset", "ip_address", "2001:db8:85a3::8a2e:370:7334"),
        ("listening on fe80::1ff:fe23:4567:890a", "ip_address", "fe80::1ff:fe23:4567:890a"),
        ("card 4111 1111 1111 1111 declined", "card_number", "4111 1111 1111 1111"),
        ("card 5500-0000-0000-0004", "card_number", "5500-0000-0000-0004"),
        ("ssn 123-45-6789 on file", "ssn", "123-45-6789"),
    ];

    #[test]
    fn every_kind_is_found_and_removed() {
        for (input, kind, gone) in SECRETS {
            let mut counts = RedactionCounts::new();
            let output = redact(input, &mut counts);
            assert!(
                !output.contains(gone),
                "{kind}: {gone:?} survived in {output:?}"
            );
            assert!(
                counts.get(kind).copied().unwrap_or(0) >= 1,
                "{kind} not counted for {input:?}: {counts:?} -> {output:?}"
            );
        }
    }

    #[test]
    fn innocent_text_is_left_alone() {
        let innocent = [
            "commit 3b2493e4f1c0a9d8e7b6a5f4c3d2e1f0a9b8c7d6 broke the build",
            "request 550e8400-e29b-41d4-a716-446655440000 failed",
            "numpy 1.26.2 requires python>=3.9, got 3.11.4",
            "error in ./src/components/App.tsx:42:7",
            "see /usr/lib/python3.11/site-packages/numpy/core.py",
            "std::io::Error: permission denied at 12:30:45",
            "exit code 137 after 1796342400 seconds",
            "version v1.2.3.4 of the package",
            "ImportError: cannot import name 'foo' from 'bar'",
            "",
            "   ",
            "token limit reached", // the word alone is not an assignment
        ];
        for text in innocent {
            let mut counts = RedactionCounts::new();
            let output = redact(text, &mut counts);
            assert_eq!(output, text, "changed: {counts:?}");
            assert!(counts.is_empty(), "{text:?}: {counts:?}");
        }
    }

    #[test]
    fn luhn_failures_and_bad_octets_stay() {
        let mut counts = RedactionCounts::new();
        assert_eq!(
            redact("id 4111 1111 1111 1112", &mut counts),
            "id 4111 1111 1111 1112"
        );
        assert_eq!(redact("host 999.1.1.1", &mut counts), "host 999.1.1.1");
        assert!(counts.is_empty());
    }

    #[test]
    fn counts_add_up_per_kind_and_json_is_walked() {
        let mut value = serde_json::json!({
            "user": "a@b.io and c@d.io",
            "nested": [{"ip": "10.0.0.1"}],
            "n": 3
        });
        let mut counts = RedactionCounts::new();
        redact_json(&mut value, &mut counts);
        assert_eq!(counts.get("email"), Some(&2));
        assert_eq!(counts.get("ip_address"), Some(&1));
        assert!(!value.to_string().contains("a@b.io"));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x1234_5678_u64;
        let alphabet: Vec<char> = "aZ09@:./\\-_= \n\"'ёé漢🙂+".chars().collect();
        for _ in 0..300 {
            let text: String = (0..200)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            let mut counts = RedactionCounts::new();
            let _ = redact(&text, &mut counts);
        }
    }
}
