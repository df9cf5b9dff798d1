//! The texts of the load: generated failure episodes (goal, failing action,
//! tool, error trace, error class), and the Zipf sampler that picks which
//! one a request is about.
//!
//! An episode is the `n`-th point of a product of word lists (verbs,
//! packages, versions, settings, purposes, flags), reached through a
//! bijection so that consecutive `n` give unrelated texts and no two `n`
//! below [`SPACE`] give the same goal. `--texts zipf` uses the first 10,000
//! of them as its universe; `--texts distinct` uses a fresh `n` for every
//! request (and, on a second axis, a per-request word so that even the
//! error signature differs).

use rand::Rng;

const VERBS: &[&str] = &[
    "install",
    "upgrade",
    "build",
    "deploy",
    "test",
    "migrate",
    "configure",
    "compile",
    "bundle",
    "lint",
    "publish",
    "containerize",
    "benchmark",
    "vendor",
    "pin",
    "cross-compile",
];

/// (package, tool, subcommand, error type, message)
const PACKAGES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "numpy",
        "pip",
        "install",
        "ModuleNotFoundError",
        "No module named distutils",
    ),
    (
        "pandas",
        "pip",
        "install",
        "ImportError",
        "cannot import name 'Int64Index' from pandas",
    ),
    (
        "torch",
        "pip",
        "install",
        "OSError",
        "libcudart.so.12: cannot open shared object file",
    ),
    (
        "tensorflow",
        "pip",
        "install",
        "ERROR",
        "No matching distribution found for tensorflow",
    ),
    (
        "django",
        "python",
        "manage.py migrate",
        "django.db.utils.OperationalError",
        "could not connect to server: Connection refused",
    ),
    (
        "flask",
        "gunicorn",
        "--bind 0.0.0.0",
        "ImportError",
        "cannot import name 'escape' from jinja2",
    ),
    (
        "fastapi",
        "uvicorn",
        "app:main --reload",
        "pydantic.errors.PydanticUserError",
        "field defined on a base class was overridden",
    ),
    (
        "grpcio",
        "pip",
        "install",
        "error",
        "command 'gcc' failed with exit status 1",
    ),
    (
        "psycopg2",
        "pip",
        "install",
        "Error",
        "pg_config executable not found",
    ),
    (
        "react",
        "npm",
        "install",
        "npm ERR!",
        "ERESOLVE unable to resolve dependency tree",
    ),
    (
        "webpack",
        "npx",
        "webpack --mode production",
        "ModuleNotFoundError",
        "Module not found: Error: Can't resolve 'fs'",
    ),
    (
        "typescript",
        "npx",
        "tsc --noEmit",
        "error TS2307",
        "Cannot find module or its corresponding type declarations",
    ),
    (
        "next",
        "npm",
        "run build",
        "Error",
        "Failed to collect page data for /api/health",
    ),
    (
        "eslint",
        "npx",
        "eslint .",
        "Error",
        "Failed to load config airbnb to extend from",
    ),
    (
        "prisma",
        "npx",
        "prisma migrate deploy",
        "Error: P1001",
        "Can't reach database server at localhost",
    ),
    (
        "tokio",
        "cargo",
        "build --release",
        "error[E0433]",
        "failed to resolve: could not find main in tokio",
    ),
    (
        "openssl-sys",
        "cargo",
        "build",
        "error",
        "failed to run custom build command for openssl-sys",
    ),
    (
        "serde",
        "cargo",
        "test",
        "error[E0277]",
        "the trait bound Deserialize is not satisfied",
    ),
    (
        "rocksdb",
        "cargo",
        "build",
        "error",
        "failed to run custom build command for librocksdb-sys",
    ),
    (
        "golang.org/x/net",
        "go",
        "mod tidy",
        "go: error",
        "module declares its path as a different module",
    ),
    (
        "grpc-go",
        "go",
        "build ./...",
        "undefined",
        "grpc.WithInsecure is deprecated and removed",
    ),
    (
        "spring-boot",
        "gradle",
        "bootJar",
        "FAILURE",
        "Could not resolve org.springframework.boot:spring-boot-gradle-plugin",
    ),
    (
        "hibernate",
        "mvn",
        "package",
        "ERROR",
        "Failed to execute goal on project: Could not resolve dependencies",
    ),
    (
        "postgres",
        "docker",
        "compose up -d",
        "Error response from daemon",
        "port is already allocated",
    ),
    (
        "redis",
        "docker",
        "run",
        "Error response from daemon",
        "pull access denied, repository does not exist",
    ),
    (
        "nginx",
        "kubectl",
        "apply -f deploy.yaml",
        "Error from server (Forbidden)",
        "pods is forbidden: User cannot create resource",
    ),
    (
        "ingress-nginx",
        "helm",
        "upgrade --install",
        "Error: UPGRADE FAILED",
        "another operation is in progress",
    ),
    (
        "aws_s3_bucket",
        "terraform",
        "apply",
        "Error",
        "creating S3 Bucket: BucketAlreadyExists",
    ),
    (
        "rails",
        "bundle",
        "install",
        "Gem::Ext::BuildError",
        "ERROR: Failed to build gem native extension",
    ),
    (
        "nokogiri",
        "gem",
        "install",
        "ERROR",
        "Failed to build gem native extension (libxml2 missing)",
    ),
    (
        "libssl",
        "apt-get",
        "install -y",
        "E:",
        "Unable to locate package libssl1.1",
    ),
    (
        "cmake",
        "make",
        "-j2",
        "CMake Error",
        "Could not find a package configuration file provided by Boost",
    ),
];

const SETTINGS: &[&str] = &[
    "in a fresh python virtualenv",
    "on the CI runner (ubuntu-22.04)",
    "inside the alpine docker image",
    "on macOS arm64",
    "behind the corporate proxy",
    "in the monorepo's backend service",
    "on a Windows build agent",
    "in the staging cluster",
    "with the offline package mirror",
    "on a clean checkout of the release branch",
    "in the devcontainer",
    "on the GPU training node",
    "inside a distroless base image",
    "on the self-hosted runner",
    "in the lambda deployment package",
    "after switching to the new lockfile",
];

const PURPOSES: &[&str] = &[
    "for the nightly release",
    "so the integration tests pass",
    "before the security audit",
    "to unblock the data pipeline",
    "for the customer demo",
    "to reproduce the flaky test",
    "while upgrading the base image",
    "to enable the new feature flag",
    "for the performance regression hunt",
    "so that the docs build again",
    "after the dependency bot's pull request",
    "to ship the hotfix",
];

const FLAGS: &[&str] = &[
    "",
    " --no-cache-dir",
    " --verbose",
    " --offline",
    " --force",
    " --locked",
    " --prefer-binary",
    " --frozen-lockfile",
];

const ERROR_CLASSES: &[&str] = &[
    "configuration_error",
    "permission_error",
    "network_error",
    "resource_error",
    "dependency_error",
    "timeout_error",
    "validation_error",
    "unknown",
];

const OS: &[&str] = &["linux", "macos", "windows"];
const PYTHONS: &[&str] = &["3.10", "3.11.4", "3.12.1", "3.13"];

/// Major × minor × patch of the version in a goal.
const VERSIONS: u64 = 30 * 25 * 12;

/// How many distinct episodes [`Episode::nth`] can make.
pub const SPACE: u64 = VERBS.len() as u64
    * PACKAGES.len() as u64
    * SETTINGS.len() as u64
    * PURPOSES.len() as u64
    * VERSIONS;

/// A generated failure episode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Episode {
    pub goal: String,
    pub action: String,
    pub tool: String,
    pub error_trace: String,
    pub error_class: &'static str,
    pub os: &'static str,
    pub python: &'static str,
}

impl Episode {
    /// The `n`-th episode (`n < SPACE`; larger `n` wrap around). Distinct
    /// `n` below [`SPACE`] give distinct goals.
    pub fn nth(n: u64) -> Episode {
        // A bijection of [0, SPACE): multiplication by a constant coprime
        // with SPACE (whose prime factors are 2, 3, 5), then an offset.
        let mut x = (u128::from(n % SPACE) * 1_000_000_007u128 % u128::from(SPACE)) as u64;
        let mut digit = |radix: usize| {
            let d = (x % radix as u64) as usize;
            x /= radix as u64;
            d
        };
        let verb = VERBS[digit(VERBS.len())];
        let (package, tool, sub, err, message) = PACKAGES[digit(PACKAGES.len())];
        let setting = SETTINGS[digit(SETTINGS.len())];
        let purpose = PURPOSES[digit(PURPOSES.len())];
        let (major, minor, patch) = (digit(30), digit(25), digit(12));
        let version = format!("{major}.{minor}.{patch}");
        let flag = FLAGS[(major + minor) % FLAGS.len()];
        let error_class = ERROR_CLASSES[(minor + patch) % ERROR_CLASSES.len()];
        Episode {
            goal: format!("{verb} {package} {version} {setting} {purpose}"),
            action: format!("{tool} {sub} {package}=={version}{flag}"),
            tool: tool.to_owned(),
            error_trace: format!(
                "{err}: {message}\n  while running `{tool} {sub} {package}` {setting}\n  {package} {version} requires a newer toolchain"
            ),
            error_class,
            os: OS[patch % OS.len()],
            python: PYTHONS[minor % PYTHONS.len()],
        }
    }

    /// Makes every text of this episode unique to `serial` (distinct mode):
    /// a word (letters, so the error signature, which strips numbers, keeps
    /// it) in the goal, the action and the trace.
    pub fn make_unique(&mut self, serial: u64) {
        let word = letters(serial);
        self.goal = format!("{} (ticket {word})", self.goal);
        self.action = format!("{} --label {word}", self.action);
        self.error_trace = format!("{}\n  in job {word}", self.error_trace);
    }
}

/// `n` written in the letters a..z (bijective base 26).
pub fn letters(mut n: u64) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'a' + (n % 26) as u8);
        n /= 26;
        if n == 0 {
            break;
        }
        n -= 1;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII")
}

/// Zipf(s) over ranks 1..=n: P(rank k) ∝ 1 / k^s, sampled by binary search
/// in the cumulative distribution.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n ≥ 1` ranks with exponent `s`.
    pub fn new(n: usize, s: f64) -> Zipf {
        assert!(n >= 1, "Zipf needs at least one rank");
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 1..=n {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    /// A rank index in `0..n` (0 is the most frequent).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }

    /// The probability of rank index `i`.
    #[cfg(test)]
    pub fn probability(&self, i: usize) -> f64 {
        self.cdf[i] - if i == 0 { 0.0 } else { self.cdf[i - 1] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashSet;

    #[test]
    fn zipf_frequencies_follow_one_over_rank() {
        let zipf = Zipf::new(10_000, 1.0);
        let harmonic: f64 = (1..=10_000).map(|k| 1.0 / k as f64).sum();
        assert!((zipf.probability(0) - 1.0 / harmonic).abs() < 1e-12);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let draws = 400_000;
        let mut counts = vec![0u32; 10_000];
        for _ in 0..draws {
            counts[zipf.sample(&mut rng)] += 1;
        }
        for (i, expected) in [(0usize, 1.0), (1, 0.5), (2, 1.0 / 3.0), (9, 0.1)] {
            let expected = expected / harmonic;
            let seen = counts[i] as f64 / draws as f64;
            assert!(
                (seen - expected).abs() < 0.1 * expected,
                "rank {}: seen {seen}, expected {expected}",
                i + 1
            );
        }
        // The top 100 ranks carry H_100 / H_10000 of the mass (about 53 %).
        let top: u32 = counts[..100].iter().sum();
        let expected = (1..=100).map(|k| 1.0 / k as f64).sum::<f64>() / harmonic;
        let seen = top as f64 / draws as f64;
        assert!(
            (seen - expected).abs() < 0.01,
            "top 100: {seen} vs {expected}"
        );
        // Every draw is in range, and the tail is reached.
        assert!(counts[5_000..].iter().any(|&c| c > 0));
    }

    #[test]
    fn episodes_are_distinct_and_valid_captures() {
        let mut goals = HashSet::new();
        for n in 0..20_000 {
            let e = Episode::nth(n);
            let chars = e.goal.chars().count();
            assert!((10..=2000).contains(&chars), "{}", e.goal);
            assert!(e.error_trace.chars().count() >= 10);
            assert!(!e.tool.is_empty() && !e.action.is_empty());
            assert!(goals.insert(e.goal), "goal {n} repeats an earlier one");
        }
    }

    #[test]
    fn unique_words_differ_per_serial() {
        let words: HashSet<String> = (0..100_000).map(letters).collect();
        assert_eq!(words.len(), 100_000);
        assert_eq!(letters(0), "a");
        assert_eq!(letters(26), "aa");
        let mut a = Episode::nth(3);
        let mut b = Episode::nth(3);
        a.make_unique(1);
        b.make_unique(2);
        assert_ne!(a.goal, b.goal);
        assert_ne!(a.error_trace, b.error_trace);
    }
}
