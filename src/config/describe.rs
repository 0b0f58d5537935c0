//! Human descriptions of validated settings, for `cdf-syncd check-config` (and later
//! `status`): one `label  value` line per setting, in the words of the TOML file.
//!
//! Secrets appear only as their reference ("from environment variable X") and whether
//! they can be found right now; their values are never read here.

use std::fmt::{self, Write as _};
use std::time::Duration;

use bytesize::ByteSize;

use super::{
    AfterUpload, AuthSettings, CdfSettings, DataSetRef, PartSize, RootSettings, SecretSource,
    Settings, Target, limits,
};

pub fn line(out: &mut String, label: &str, value: impl fmt::Display) -> fmt::Result {
    writeln!(out, "  {label:<22}{value}")
}

pub fn write_cdf(out: &mut String, c: &CdfSettings) -> fmt::Result {
    writeln!(out, "CDF")?;
    let insecure = if c.allow_insecure_http {
        "  (insecure http allowed: emulator only)"
    } else {
        ""
    };
    line(out, "base URL", format_args!("{}{insecure}", c.base_url))?;
    line(out, "project", &c.project)?;
    match &c.target {
        Target::Classic => line(out, "target", "classic Files API")?,
        Target::DataModeling { space, view } => line(
            out,
            "target",
            format_args!(
                "data modeling: CogniteFile nodes in space `{space}` through view {}:{}/{}",
                view.space, view.external_id, view.version
            ),
        )?,
    }
    write_auth(out, &c.auth)?;
    let pipeline = c.extraction_pipeline.as_deref().unwrap_or("none");
    let remote = if c.remote_config {
        " (remote config on)"
    } else {
        ""
    };
    line(
        out,
        "extraction pipeline",
        format_args!("{pipeline}{remote}"),
    )?;
    line(
        out,
        "proxy",
        c.proxy.as_ref().map_or(
            "from HTTPS_PROXY / NO_PROXY if set".to_owned(),
            ToString::to_string,
        ),
    )?;
    line(
        out,
        "extra CA file",
        c.ca_file
            .as_ref()
            .map_or("none".to_owned(), |p| p.display().to_string()),
    )?;
    line(
        out,
        "upload URL host",
        c.upload_url_host.as_deref().unwrap_or("as returned by CDF"),
    )
}

fn write_auth(out: &mut String, auth: &AuthSettings) -> fmt::Result {
    match auth {
        AuthSettings::ClientCredentials(cc) => {
            line(out, "auth", "OAuth2 client credentials")?;
            line(out, "  token URL", &cc.token_url)?;
            line(out, "  client id", &cc.client_id)?;
            line(
                out,
                "  client secret",
                format_args!(
                    "from {} ({})",
                    cc.client_secret,
                    availability(&cc.client_secret)
                ),
            )?;
            let scopes = if cc.scopes.is_empty() {
                "none".to_owned()
            } else {
                cc.scopes.join(" ")
            };
            line(out, "  scopes", scopes)?;
            if let Some(a) = &cc.audience {
                line(out, "  audience", a)?;
            }
            if let Some(r) = &cc.resource {
                line(out, "  resource", r)?;
            }
            Ok(())
        }
        AuthSettings::TokenFile(p) => {
            let source = SecretSource::File(p.clone());
            line(
                out,
                "auth",
                format_args!(
                    "static token from {} ({}; testing only)",
                    p.display(),
                    availability(&source)
                ),
            )
        }
    }
}

/// Whether a secret can be found, never its value.
fn availability(source: &SecretSource) -> String {
    match source.availability() {
        Ok(()) => "available".to_owned(),
        Err(e) => format!("WARNING: not available now: {e}"),
    }
}

pub fn write_root(out: &mut String, r: &RootSettings) -> fmt::Result {
    let exists = if r.path.is_dir() {
        ""
    } else {
        "  (does not exist yet)"
    };
    writeln!(out, "Root `{}`: {}{exists}", r.id, r.path.display())?;
    let p = r.filter.patterns();
    line(out, "include", list_or(&p.include, "everything"))?;
    line(out, "exclude", list_or(&p.exclude, "nothing"))?;
    line(out, "temporary names", list_or(&p.temp, "none"))?;
    line(out, "directory prefix", &r.directory_prefix)?;
    line(
        out,
        "externalId prefix",
        format_args!("{:?}", r.external_id_prefix),
    )?;
    write_fields(out, r)?;
    write_behaviour(out, r)
}

fn write_behaviour(out: &mut String, r: &RootSettings) -> fmt::Result {
    let max = if r.max_file_size == limits::FILE_SIZE_MAX {
        " (CDF's maximum)"
    } else {
        ""
    };
    line(
        out,
        "max file size",
        format_args!("{}{max}", ByteSize(r.max_file_size)),
    )?;
    let after = match &r.after_upload {
        AfterUpload::Keep => "keep the local file".to_owned(),
        AfterUpload::Delete => "delete the local file".to_owned(),
        AfterUpload::MoveTo(p) => format!("move the local file under {}", p.display()),
    };
    line(out, "after upload", after)?;
    line(out, "on change", r.on_change)?;
    line(out, "on local delete", r.on_delete)?;
    line(
        out,
        "follow symlinks",
        if r.follow_symlinks { "yes" } else { "no" },
    )
}

fn write_fields(out: &mut String, r: &RootSettings) -> fmt::Result {
    let f = &r.fields;
    let data_set = match &f.data_set {
        None => "none".to_owned(),
        Some(DataSetRef::Id(id)) => format!("id {id}"),
        Some(DataSetRef::ExternalId(x)) => format!("externalId {x}"),
    };
    line(out, "data set", data_set)?;
    line(out, "source", f.source.as_deref().unwrap_or("none"))?;
    line(out, "labels", list(&f.labels))?;
    line(out, "security categories", list(&f.security_categories))?;
    line(out, "asset ids", list(&f.asset_ids))?;
    let metadata: Vec<String> = f
        .metadata
        .iter()
        .map(|(k, v)| format!("{k}={}", short(v)))
        .collect();
    line(out, "metadata", list(&metadata))?;
    let mime: Vec<String> = r
        .mime_types
        .overrides()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    line(out, "MIME overrides", list(&mime))
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    list_or(items, "none")
}

fn list_or<T: fmt::Display>(items: &[T], empty: &str) -> String {
    if items.is_empty() {
        empty.to_owned()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn short(v: &str) -> String {
    if v.chars().count() <= 40 {
        v.to_owned()
    } else {
        format!("{}...", v.chars().take(40).collect::<String>())
    }
}

fn dur(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

pub fn write_runtime(out: &mut String, s: &Settings) -> fmt::Result {
    write_sync(out, s)?;
    write_upload(out, s)?;
    write_local(out, s)
}

fn write_sync(out: &mut String, s: &Settings) -> fmt::Result {
    let y = &s.sync;
    writeln!(out, "Sync")?;
    line(out, "stable for", dur(y.stable_for))?;
    line(out, "safety rescan every", dur(y.scan_interval))?;
    line(
        out,
        "watch",
        format_args!("{} (poll interval {})", y.watch, dur(y.poll_interval)),
    )?;
    line(out, "content hash", y.hash)
}

fn per_second(rate: Option<u64>) -> String {
    rate.map_or("unlimited".to_owned(), |r| format!("{}/s", ByteSize(r)))
}

fn write_upload(out: &mut String, s: &Settings) -> fmt::Result {
    let u = &s.upload;
    writeln!(out, "Upload")?;
    line(out, "files at once", u.max_concurrent_files)?;
    line(out, "parts per file", u.max_parallel_parts)?;
    match u.part_size {
        PartSize::Auto => line(out, "part size", "auto")?,
        PartSize::Fixed(n) => line(out, "part size", ByteSize(n))?,
    }
    line(
        out,
        "timeouts",
        format_args!(
            "request {}, part {}",
            dur(u.request_timeout),
            dur(u.part_timeout)
        ),
    )?;
    let r = &u.retry;
    line(
        out,
        "retries per request",
        format_args!(
            "{} (backoff {} .. {})",
            r.max_request_retries,
            dur(r.initial_backoff),
            dur(r.max_backoff)
        ),
    )?;
    line(out, "max rate", per_second(u.max_rate))?;
    for w in u.max_rate_schedule.windows() {
        let rate = per_second(w.rate);
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        line(
            out,
            "  window",
            format_args!("{}-{} = {rate}", hm(w.start), hm(w.end)),
        )?;
    }
    line(
        out,
        "max requests/s",
        u.max_requests_per_second
            .map_or("unlimited".to_owned(), |n| n.to_string()),
    )
}

fn write_local(out: &mut String, s: &Settings) -> fmt::Result {
    writeln!(out, "State")?;
    line(out, "directory", s.state.dir.display())?;
    writeln!(out, "Admin")?;
    let group = s
        .admin
        .socket_group
        .as_ref()
        .map_or("mode 0600".to_owned(), |g| format!("mode 0660, group {g}"));
    line(
        out,
        "socket",
        format_args!("{} ({group})", s.admin.socket.display()),
    )?;
    line(
        out,
        "metrics",
        s.admin
            .metrics_listen
            .map_or("off".to_owned(), |a| format!("http://{a}/metrics")),
    )?;
    line(out, "shutdown grace", dur(s.admin.shutdown_grace))?;
    writeln!(out, "Log")?;
    line(
        out,
        "format / level",
        format_args!("{} / {} (RUST_LOG overrides)", s.log.format, s.log.level),
    )
}
