//! The Prometheus text format, as far as the gateway's `/metrics` needs:
//! samples `name{label="value",…} number`, comments skipped; and the sums
//! a load run takes between two scrapes.

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses an exposition; lines that are not samples are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) if open < line.find(' ').unwrap_or(usize::MAX) => {
            let (labels, after) = parse_labels(&line[open + 1..])?;
            (&line[..open], labels, after)
        }
        _ => {
            let (name, rest) = line.split_once(' ')?;
            (name, Vec::new(), rest)
        }
    };
    // A timestamp may follow the value.
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Labels after the `{`, up to the closing `}`; what follows it.
fn parse_labels(s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after) = rest.split_once('=')?;
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.push((key.trim().to_owned(), value));
        rest = &after[1 + end + 1..];
    }
}

/// The sum of samples named `name` whose labels include all of `filter`.
pub fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| filter.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// The first sample named `name` (a gauge), if any.
pub fn gauge(samples: &[Sample], name: &str) -> Option<f64> {
    samples.iter().find(|s| s.name == name).map(|s| s.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP gateway_request_duration_seconds HTTP request latency
# TYPE gateway_request_duration_seconds histogram
gateway_request_duration_seconds_bucket{route="/api/v1/search",method="POST",le="0.001"} 3
gateway_request_duration_seconds_bucket{route="/api/v1/search",method="POST",le="+Inf"} 10
gateway_request_duration_seconds_sum{route="/api/v1/search",method="POST"} 0.25
gateway_request_duration_seconds_count{route="/api/v1/search",method="POST"} 10
gateway_request_duration_seconds_sum{route="/api/v1/reflect",method="POST"} 0.5
gateway_request_duration_seconds_count{route="/api/v1/reflect",method="POST"} 4
gateway_engine_call_seconds_sum{instance="text",rpc="search"} 1.5e-1
gateway_errors_total{code="a \"quoted\", odd}"} 2
gateway_embedding_cache_hit_ratio 0.875
gateway_captures_total 7 1700000000000
"#;

    #[test]
    fn parses_samples_labels_and_values() {
        let samples = parse(TEXT);
        assert_eq!(samples.len(), 10);
        assert_eq!(samples[1].label("le"), Some("+Inf"));
        assert_eq!(samples[1].value, 10.0);
        assert_eq!(samples[7].label("code"), Some("a \"quoted\", odd}"));
        assert_eq!(samples[7].value, 2.0);
        assert_eq!(samples[9].name, "gateway_captures_total");
        assert_eq!(samples[9].value, 7.0);
    }

    #[test]
    fn sums_over_labels_and_filters() {
        let samples = parse(TEXT);
        assert_eq!(
            sum(&samples, "gateway_request_duration_seconds_count", &[]),
            14.0
        );
        assert_eq!(
            sum(
                &samples,
                "gateway_request_duration_seconds_sum",
                &[("route", "/api/v1/reflect")]
            ),
            0.5
        );
        assert_eq!(sum(&samples, "gateway_engine_call_seconds_sum", &[]), 0.15);
        assert_eq!(sum(&samples, "missing", &[]), 0.0);
        assert_eq!(
            gauge(&samples, "gateway_embedding_cache_hit_ratio"),
            Some(0.875)
        );
    }
}
