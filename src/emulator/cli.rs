//! `cdf-syncd emulator`: runs the CDF emulator as a process (the demo, scripts,
//! benchmarks, the Python SDK conformance test).
//!
//! Prints exactly one line on stdout, `listening on http://ADDR`, once it accepts
//! connections (scripts read the port from it), logs to stderr, and serves until SIGINT
//! or SIGTERM. Every flag is in `docs/EMULATOR.md`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PROJECT, Emulator, EmulatorConfig, Faults,
    MIN_PART_SIZE,
};

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to serve on (port 0: any free port; the real one is printed).
    #[arg(long, default_value = "127.0.0.1:4300")]
    pub listen: SocketAddr,
    /// Where content is stored (a temporary directory when omitted).
    #[arg(long, value_name = "DIR", conflicts_with = "discard")]
    pub data: Option<PathBuf>,
    /// Hash content, store nothing (benchmarks; downloads then answer 404).
    #[arg(long)]
    pub discard: bool,
    /// A project that exists (repeatable).
    #[arg(long = "project", value_name = "NAME", default_values_t = [DEMO_PROJECT.to_owned()])]
    pub projects: Vec<String>,
    /// An OAuth2 client the token endpoint accepts, as ID:SECRET (repeatable).
    #[arg(long = "client", value_name = "ID:SECRET", value_parser = parse_client,
          default_values_t = [Client(DEMO_CLIENT_ID.to_owned(), DEMO_CLIENT_SECRET.to_owned())])]
    pub clients: Vec<Client>,
    /// `expires_in` of issued access tokens.
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = parse_duration)]
    pub token_lifetime: Duration,
    /// Smallest allowed non-last multipart part (lower it only for fast tests).
    #[arg(long, value_name = "SIZE", default_value_t = MIN_PART_SIZE, value_parser = parse_size)]
    pub min_part_size: u64,
    /// Lifetime of upload URLs; an expired URL gets 403.
    #[arg(long, value_name = "DUR", default_value = "7d", value_parser = parse_duration)]
    pub url_lifetime: Duration,
    /// How long after a finished upload `uploaded` turns true.
    #[arg(long, value_name = "DUR", default_value = "0s", value_parser = parse_duration)]
    pub uploaded_delay: Duration,
    /// Hand out GCS resumable (`/api/v1/files/gcs_proxy/...`) single-part URLs.
    #[arg(long)]
    pub gcs_resumable: bool,
    /// Reject (not only count) what real cloud storage rejects.
    #[arg(long)]
    pub strict_headers: bool,
    /// How long a new CogniteFile node stays invisible to uploadlink/multiuploadlink.
    #[arg(long, value_name = "DUR", default_value = "0s", value_parser = parse_duration)]
    pub dm_propagation_lag: Duration,
    /// A view declared to implement CogniteFile, `SPACE:EXTERNAL_ID/VERSION`
    /// (repeatable); CogniteFile and CogniteExtractorFile are always known.
    #[arg(long = "file-view", value_name = "VIEW")]
    pub file_views: Vec<crate::emulator::ViewId>,
    #[command(flatten)]
    pub faults: Box<FaultArgs>,
}

/// Fault injection at start; changeable later through `PUT /_emulator/faults`.
#[derive(Debug, Args)]
pub struct FaultArgs {
    /// Probability of a 429 on an API call.
    #[arg(long = "fault-429", value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub api_429: f64,
    /// `Retry-After` seconds sent with injected API 429s.
    #[arg(long = "fault-429-retry-after", value_name = "SECS")]
    pub api_429_retry_after: Option<u64>,
    /// Probability of a 500 on an API call.
    #[arg(long = "fault-500", value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub api_500: f64,
    /// Probability of a 503 on an API call.
    #[arg(long = "fault-503", value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub api_503: f64,
    /// Probability of a 429 on an upload-URL PUT.
    #[arg(long = "fault-put-429", value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub put_429: f64,
    /// Probability of a 500 on an upload-URL PUT.
    #[arg(long = "fault-put-500", value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub put_500: f64,
    /// Probability of a 503 on an upload-URL PUT.
    #[arg(long = "fault-put-503", value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub put_503: f64,
    /// Probability that a PUT's connection is cut mid-body.
    #[arg(long = "fault-drop", value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub drop_connection: f64,
    /// Probability that the work is done but the reply is dropped.
    #[arg(long = "fault-lost-response", value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub lost_response: f64,
    /// Latency added to every request.
    #[arg(long = "latency", value_name = "DUR", default_value = "0s", value_parser = parse_duration)]
    pub latency: Duration,
    /// Requests beyond this many in flight get 429.
    #[arg(long = "max-concurrency", value_name = "N")]
    pub max_concurrency: Option<usize>,
    /// Bandwidth of each upload-URL PUT, bytes per second (e.g. `128 KiB`).
    #[arg(long = "put-rate", value_name = "SIZE", value_parser = parse_rate)]
    pub put_rate: Option<u64>,
}

/// An OAuth2 client: id and secret.
#[derive(Clone)]
pub struct Client(pub String, pub String);

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:***", self.0)
    }
}

/// Shown as the `--client` default in `--help`: the demo client is public knowledge.
impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

fn parse_client(s: &str) -> Result<Client, String> {
    match s.split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
            Ok(Client(id.to_owned(), secret.to_owned()))
        }
        _ => Err("expected ID:SECRET".to_owned()),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (examples: 500ms, 2s, 1h, 7d)"))
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{e} (examples: 1024, 64KiB, 5 MiB)"))
}

fn parse_rate(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err("expected a positive size per second".to_owned()),
        n => Ok(n),
    }
}

fn parse_probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err("expected a probability between 0 and 1".to_owned()),
    }
}

impl EmulatorArgs {
    /// The validated emulator settings.
    pub fn config(&self) -> EmulatorConfig {
        let f = &self.faults;
        EmulatorConfig {
            listen: self.listen,
            data_dir: self.data.clone(),
            discard: self.discard,
            projects: self.projects.clone(),
            clients: self
                .clients
                .iter()
                .map(|c| (c.0.clone(), c.1.clone()))
                .collect(),
            token_lifetime: self.token_lifetime,
            min_part_size: self.min_part_size,
            url_lifetime: self.url_lifetime,
            uploaded_delay: self.uploaded_delay,
            gcs_resumable: self.gcs_resumable,
            strict_headers: self.strict_headers,
            dm_propagation_lag: self.dm_propagation_lag,
            file_views: self.file_views.clone(),
            faults: Faults {
                api_429: f.api_429,
                api_429_retry_after: f.api_429_retry_after,
                api_500: f.api_500,
                api_503: f.api_503,
                put_429: f.put_429,
                put_500: f.put_500,
                put_503: f.put_503,
                drop_connection: f.drop_connection,
                lost_response: f.lost_response,
                latency_ms: u64::try_from(f.latency.as_millis()).unwrap_or(u64::MAX),
                max_concurrency: f.max_concurrency,
                put_bytes_per_sec: f.put_rate,
                scripted: Vec::new(),
            },
        }
    }
}

/// Runs the emulator until SIGINT or SIGTERM.
pub fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    crate::commands::init_console_logging();
    let config = args.config();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("emulator")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let emulator = Emulator::start(config).await?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on http://{}", emulator.addr())?;
            out.flush()?;
        }
        tracing::info!(addr = %emulator.addr(), "CDF emulator running; stop with Ctrl-C");
        let signal = wait_for_signal().await;
        tracing::info!(signal, "shutting down");
        emulator.shutdown().await;
        anyhow::Ok(())
    })
}

/// Waits for SIGINT or SIGTERM; returns its name.
async fn wait_for_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(%err, "cannot watch SIGTERM; only Ctrl-C stops the emulator");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: EmulatorArgs,
    }

    #[test]
    fn defaults_are_the_real_service() {
        let c = Cli::parse_from(["x"]).args.config();
        assert_eq!(c.listen.to_string(), "127.0.0.1:4300");
        assert_eq!(
            (c.min_part_size, c.url_lifetime),
            (MIN_PART_SIZE, Duration::from_secs(7 * 86_400))
        );
        assert_eq!(c.projects, ["demo"]);
        assert_eq!(
            c.clients,
            [(DEMO_CLIENT_ID.to_owned(), DEMO_CLIENT_SECRET.to_owned())]
        );
        assert_eq!(c.faults, Faults::default());
    }

    #[test]
    fn every_flag_parses() {
        let c = Cli::parse_from([
            "x",
            "--listen",
            "127.0.0.1:0",
            "--data",
            "/tmp/d",
            "--project",
            "a",
            "--project",
            "b",
            "--client",
            "id:se:cret",
            "--token-lifetime",
            "2s",
            "--min-part-size",
            "1 MiB",
            "--url-lifetime",
            "500ms",
            "--uploaded-delay",
            "1s",
            "--gcs-resumable",
            "--strict-headers",
            "--dm-propagation-lag",
            "3s",
            "--file-view",
            "edge:MyFile/v2",
            "--fault-429",
            "0.5",
            "--fault-429-retry-after",
            "2",
            "--fault-500",
            "0.1",
            "--fault-503",
            "0.2",
            "--fault-put-429",
            "0.3",
            "--fault-put-500",
            "0.4",
            "--fault-put-503",
            "1",
            "--fault-drop",
            "0.05",
            "--fault-lost-response",
            "0.01",
            "--latency",
            "20ms",
            "--max-concurrency",
            "4",
            "--put-rate",
            "128 KiB",
        ])
        .args
        .config();
        assert_eq!(c.projects, ["a", "b"]);
        assert_eq!(c.clients, [("id".to_owned(), "se:cret".to_owned())]);
        assert_eq!(c.min_part_size, 1024 * 1024);
        assert_eq!(c.url_lifetime, Duration::from_millis(500));
        assert!(c.gcs_resumable && c.strict_headers);
        assert_eq!(
            (c.faults.api_429, c.faults.api_429_retry_after),
            (0.5, Some(2))
        );
        assert_eq!(
            (
                c.faults.put_503,
                c.faults.latency_ms,
                c.faults.max_concurrency
            ),
            (1.0, 20, Some(4))
        );
        assert_eq!(c.faults.put_bytes_per_sec, Some(128 * 1024));
        assert_eq!(
            c.file_views,
            [crate::emulator::ViewId::new("edge", "MyFile", "v2")]
        );
        assert!(Cli::try_parse_from(["x", "--file-view", "edge:MyFile"]).is_err());
        assert!(Cli::try_parse_from(["x", "--put-rate", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--fault-500", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["x", "--client", "nosecret"]).is_err());
        assert!(Cli::try_parse_from(["x", "--data", "/d", "--discard"]).is_err());
    }
}
