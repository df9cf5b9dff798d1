//! What the load sends: the route mix and the request bodies (as in
//! `docs/gateway.md`), in the two text modes.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use rand::Rng;
use serde_json::json;

use crate::texts::{Episode, Zipf};

/// The routes of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    Search,
    Reflect,
    Capture,
}

impl Route {
    pub const ALL: [Route; 3] = [Route::Search, Route::Reflect, Route::Capture];

    pub fn path(self) -> &'static str {
        match self {
            Route::Search => "/api/v1/search",
            Route::Reflect => "/api/v1/reflect",
            Route::Capture => "/api/v1/capture",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Route::Search => "search",
            Route::Reflect => "reflect",
            Route::Capture => "capture",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where the texts of the load come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TextMode {
    /// Episodes drawn Zipf(s) from a fixed universe (realistic repetition).
    Zipf,
    /// A new episode, with texts unique to it, for every request.
    Distinct,
}

/// The first episode number of the Zipf universe (ranks follow).
pub const UNIVERSE_START: u64 = 0;
/// Distinct-mode episodes start here, far from the universe.
pub const DISTINCT_START: u64 = 1 << 40;

/// The text the gateway embeds for an episode or a reflect query (its
/// `embed::action_text`).
pub fn action_text(goal: &str, action: &str, tool: &str) -> String {
    format!("{goal}\naction: {action}\ntool: {tool}")
}

/// The text the gateway embeds for a request of `route` about `e`.
pub fn embedded_text(route: Route, e: &Episode) -> String {
    match route {
        Route::Search => e.goal.clone(),
        Route::Reflect | Route::Capture => action_text(&e.goal, &e.action, &e.tool),
    }
}

/// The JSON body of a request of `route` about `e`.
pub fn body(route: Route, e: &Episode) -> Bytes {
    let state = json!({"os": e.os, "python": e.python});
    let value = match route {
        Route::Search => json!({"goal": e.goal, "k": 10, "current_state": state}),
        Route::Reflect => json!({
            "goal": e.goal,
            "proposed_action": e.action,
            "tool": e.tool,
            "current_state": state,
        }),
        Route::Capture => json!({
            "goal": e.goal,
            "tool_chain": [e.tool],
            "actions_taken": [e.action],
            "error_trace": e.error_trace,
            "error_class": e.error_class,
            "environment_info": {"os": e.os, "python": e.python},
            "preconditions": [format!("python={}", e.python), format!("os={}", e.os)],
            "resolution": format!("pin the version that works and retry `{}`", e.tool),
            "tags": [e.tool, "ci"],
            "severity": 3,
        }),
    };
    Bytes::from(serde_json::to_vec(&value).expect("JSON of plain values"))
}

/// Picks a route by weight.
#[derive(Clone, Debug)]
pub struct Mix {
    cumulative: [u32; 3],
}

impl Mix {
    /// Weights of search, reflect, capture (not all zero).
    pub fn new(search: u32, reflect: u32, capture: u32) -> Mix {
        assert!(search + reflect + capture > 0, "the mix is empty");
        Mix {
            cumulative: [search, search + reflect, search + reflect + capture],
        }
    }

    /// Parses `search=50,reflect=30,capture=20` (missing routes: 0).
    pub fn parse(s: &str) -> Result<Mix, String> {
        let mut w = [0u32; 3];
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part}: expected route=weight"))?;
            let weight: u32 = weight
                .parse()
                .map_err(|_| format!("{part}: the weight is not a number"))?;
            let route = Route::ALL
                .iter()
                .find(|r| r.name() == name)
                .ok_or_else(|| format!("{name}: not one of search, reflect, capture"))?;
            w[route.index()] = weight;
        }
        if w.iter().sum::<u32>() == 0 {
            return Err("the mix has no weight".to_owned());
        }
        Ok(Mix::new(w[0], w[1], w[2]))
    }

    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> Route {
        let x = rng.random_range(0..self.cumulative[2]);
        Route::ALL[self.cumulative.iter().position(|&c| x < c).unwrap_or(2)]
    }
}

/// Makes the body of each request.
pub enum Bodies {
    /// Bodies of the universe, rendered once, per route; Zipf picks one.
    Zipf {
        zipf: Zipf,
        rendered: [Vec<Bytes>; 3],
    },
    /// A fresh episode per request: serials from `first` up.
    Distinct { first: u64, serial: AtomicU64 },
}

impl Bodies {
    /// Zipf over `universe` episodes with exponent `s`.
    pub fn zipf(universe: usize, s: f64) -> Bodies {
        let episodes: Vec<Episode> = (0..universe as u64)
            .map(|i| Episode::nth(UNIVERSE_START + i))
            .collect();
        let render = |route| episodes.iter().map(|e| body(route, e)).collect();
        Bodies::Zipf {
            zipf: Zipf::new(universe, s),
            rendered: [
                render(Route::Search),
                render(Route::Reflect),
                render(Route::Capture),
            ],
        }
    }

    /// Distinct episodes from serial `first` up: two runs against the same
    /// gateway send texts its embedding cache has not seen only if their
    /// ranges differ.
    pub fn distinct(first: u64) -> Bodies {
        Bodies::Distinct {
            first,
            serial: AtomicU64::new(first),
        }
    }

    /// The body of the next request of `route`.
    pub fn next<R: Rng + ?Sized>(&self, route: Route, rng: &mut R) -> Bytes {
        match self {
            Bodies::Zipf { zipf, rendered } => rendered[route.index()][zipf.sample(rng)].clone(),
            Bodies::Distinct { serial, .. } => {
                let n = serial.fetch_add(1, Ordering::Relaxed);
                body(route, &distinct_episode(n))
            }
        }
    }

    /// Distinct episodes made so far.
    pub fn distinct_count(&self) -> u64 {
        match self {
            Bodies::Zipf { .. } => 0,
            Bodies::Distinct { first, serial } => serial.load(Ordering::Relaxed) - first,
        }
    }
}

/// The `serial`-th episode of distinct mode.
pub fn distinct_episode(serial: u64) -> Episode {
    let mut e = Episode::nth(DISTINCT_START + serial);
    e.make_unique(serial);
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mix_follows_weights() {
        let mix = Mix::parse("search=50,reflect=30,capture=20").unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0u32; 3];
        for _ in 0..100_000 {
            counts[mix.pick(&mut rng).index()] += 1;
        }
        for (count, share) in counts.iter().zip([0.5, 0.3, 0.2]) {
            assert!((*count as f64 / 100_000.0 - share).abs() < 0.01);
        }
        assert!(Mix::parse("search=1,nope=2").is_err());
        assert!(Mix::parse("search=0").is_err());
    }

    #[test]
    fn bodies_are_valid_json_with_the_documented_fields() {
        let e = distinct_episode(5);
        let capture: serde_json::Value = serde_json::from_slice(&body(Route::Capture, &e)).unwrap();
        for field in [
            "goal",
            "tool_chain",
            "actions_taken",
            "error_trace",
            "error_class",
        ] {
            assert!(capture.get(field).is_some(), "{field}");
        }
        let reflect: serde_json::Value = serde_json::from_slice(&body(Route::Reflect, &e)).unwrap();
        assert_eq!(reflect["tool"], e.tool.as_str());
        assert_ne!(distinct_episode(5).goal, distinct_episode(6).goal);
    }
}
