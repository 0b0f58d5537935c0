//! Validation of `[cdf]` and `[cdf.auth]`: URLs and their schemes, the project, the
//! target (classic or data-modeling with its space and view), and exactly one
//! authentication method whose secret is given only by reference.

use reqwest::Url;
use toml::Spanned;

use std::path::Path;
use std::time::Duration;

use super::{absolute, duration, identifier, normalize, text};
use crate::config::error::Report;
use crate::config::raw::{RawAuth, RawCdf, RawView, Str};
use crate::config::secrets::SecretSource;
use crate::config::settings::{
    AuthSettings, CdfSettings, ClientCredentials, PipelineTiming, Target, TargetKind, ViewRef,
};

const RESERVED_SPACES: [&str; 8] = [
    "space", "cdf", "dms", "pg3", "shared", "system", "node", "edge",
];

pub(super) fn cdf(r: &mut Report, raw: &Spanned<RawCdf>) -> Option<CdfSettings> {
    let c = raw.get_ref();
    let insecure = c.allow_insecure_http;
    let base_url = base_url(r, &c.base_url, insecure);
    let project = project(r, &c.project);
    let target = target(r, raw);
    let auth = match &c.auth {
        Some(a) => auth(r, a, insecure, base_url.as_ref()),
        None => {
            let msg = "missing [cdf.auth]: give client credentials (token_url, client_id and a client_secret_env, client_secret_file or client_secret_credential) or a token_file";
            r.at(raw.span(), "cdf.auth", msg);
            None
        }
    };
    let extraction_pipeline = c
        .extraction_pipeline
        .as_ref()
        .map(|s| text(r, s, "cdf.extraction_pipeline", 255));
    let remote_config = c.remote_config.as_ref().is_some_and(|v| *v.get_ref());
    if let Some(v) = c.remote_config.as_ref().filter(|v| *v.get_ref())
        && c.extraction_pipeline.is_none()
    {
        r.at(
            v.span(),
            "cdf.remote_config",
            "remote_config = true needs `extraction_pipeline` (the pipeline whose config is read)",
        );
    }
    let pipeline_timing = pipeline_timing(r, c);
    let proxy = c.proxy.as_ref().map(|s| url(r, s, "cdf.proxy", true));
    let ca_file = c.ca_file.as_ref().map(|s| absolute(r, s, "cdf.ca_file"));
    let upload_url_host = c.upload_url_host.as_ref().map(|s| host(r, s));
    Some(CdfSettings {
        base_url: base_url?,
        project: project?,
        target: target?,
        allow_insecure_http: insecure,
        auth: auth?,
        extraction_pipeline: extraction_pipeline.map_or(Some(None), |v| v.map(Some))?,
        remote_config,
        pipeline_timing: pipeline_timing?,
        proxy: proxy.map_or(Some(None), |v| v.map(Some))?,
        ca_file: ca_file.map_or(Some(None), |v| v.map(Some))?,
        upload_url_host: upload_url_host.map_or(Some(None), |v| v.map(Some))?,
    })
}

/// The pipeline reporter's intervals; each key needs the feature it tunes.
fn pipeline_timing(r: &mut Report, c: &RawCdf) -> Option<PipelineTiming> {
    const MIN: Duration = Duration::from_secs(1);
    let remote = c.remote_config.as_ref().is_some_and(|v| *v.get_ref());
    let keys = [
        (
            &c.extraction_pipeline_heartbeat,
            "cdf.extraction_pipeline_heartbeat",
            c.extraction_pipeline.is_some(),
            "extraction_pipeline",
        ),
        (
            &c.extraction_pipeline_failure_after,
            "cdf.extraction_pipeline_failure_after",
            c.extraction_pipeline.is_some(),
            "extraction_pipeline",
        ),
        (
            &c.remote_config_interval,
            "cdf.remote_config_interval",
            remote,
            "remote_config = true",
        ),
    ];
    for (value, key, enabled, needs) in keys {
        if let Some(v) = value.as_ref().filter(|_| !enabled) {
            r.at(
                v.span(),
                key,
                format!("has no effect without `{needs}` in [cdf]"),
            );
        }
    }
    let d = PipelineTiming::default();
    Some(PipelineTiming {
        heartbeat: duration(
            r,
            c.extraction_pipeline_heartbeat.as_ref(),
            "cdf.extraction_pipeline_heartbeat",
            d.heartbeat,
            MIN,
        )?,
        failure_after: duration(
            r,
            c.extraction_pipeline_failure_after.as_ref(),
            "cdf.extraction_pipeline_failure_after",
            d.failure_after,
            MIN,
        )?,
        remote_config_interval: duration(
            r,
            c.remote_config_interval.as_ref(),
            "cdf.remote_config_interval",
            d.remote_config_interval,
            MIN,
        )?,
    })
}

/// An http(s) URL with a host and no credentials, query or fragment.
fn url(r: &mut Report, s: &Str, key: &str, insecure: bool) -> Option<Url> {
    let raw = s.get_ref().trim();
    let url = match Url::parse(raw) {
        Ok(u) => u,
        Err(e) => {
            r.at(s.span(), key, format!("invalid URL `{raw}` ({e}); expected e.g. \"https://westeurope-1.cognitedata.com\""));
            return None;
        }
    };
    let problem = match url.scheme() {
        "https" => None,
        "http" if insecure => None,
        "http" => Some("plain http is refused: use https, or set `allow_insecure_http = true` in [cdf] (only for a local emulator)".to_owned()),
        other => Some(format!("scheme `{other}` is not supported: use https")),
    }
    .or_else(|| url.host_str().is_none().then(|| "the URL has no host".to_owned()))
    .or_else(|| (!url.username().is_empty() || url.password().is_some()).then(|| "the URL must not contain credentials".to_owned()))
    .or_else(|| (url.query().is_some() || url.fragment().is_some()).then(|| "the URL must not have a query or fragment".to_owned()));
    match problem {
        Some(p) => {
            r.at(s.span(), key, p);
            None
        }
        None => Some(url),
    }
}

fn base_url(r: &mut Report, s: &Str, insecure: bool) -> Option<Url> {
    let url = url(r, s, "cdf.base_url", insecure)?;
    if url.path() != "/" {
        let msg = format!(
            "must be the cluster URL without a path, e.g. \"https://westeurope-1.cognitedata.com\" (cdf-syncd adds /api/v1/projects/<project>), not `{}`",
            url.path()
        );
        r.at(s.span(), "cdf.base_url", msg);
        return None;
    }
    Some(url)
}

fn project(r: &mut Report, s: &Str) -> Option<String> {
    let v = s.get_ref();
    let ok = !v.is_empty()
        && v.len() <= 255
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if !ok {
        r.at(
            s.span(),
            "cdf.project",
            format!("`{v}` is not a CDF project name: use letters, digits, `-` and `_`"),
        );
    }
    ok.then(|| v.clone())
}

fn target(r: &mut Report, raw: &Spanned<RawCdf>) -> Option<Target> {
    let c = raw.get_ref();
    let kind = c
        .target
        .as_ref()
        .map_or(TargetKind::Classic, |t| *t.get_ref());
    match kind {
        TargetKind::Classic => {
            let only_dm = "is only used with target = \"data-modeling\"";
            if let Some(s) = &c.space {
                r.at(s.span(), "cdf.space", only_dm);
            }
            if let Some(v) = &c.view {
                r.at(v.span(), "cdf.view", only_dm);
            }
            (c.space.is_none() && c.view.is_none()).then_some(Target::Classic)
        }
        TargetKind::DataModeling => {
            let Some(space) = &c.space else {
                let span = c.target.as_ref().map_or(raw.span(), |t| t.span());
                r.at(span, "cdf.space", "target = \"data-modeling\" needs `space`: the instance space the file nodes are written to");
                return None;
            };
            let space = space_id(r, space, "cdf.space");
            let view = c
                .view
                .as_ref()
                .map_or(Some(ViewRef::default()), |v| view(r, v.get_ref()));
            Some(Target::DataModeling {
                space: space?,
                view: view?,
            })
        }
    }
}

/// A data-modeling space id: a letter, then letters, digits, `_`, `-`; at most 43.
fn space_id(r: &mut Report, s: &Str, key: &str) -> Option<String> {
    let v = s.get_ref();
    let mut chars = v.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        && v.len() <= 43
        && !RESERVED_SPACES.contains(&v.as_str());
    if !ok {
        r.at(s.span(), key, format!("`{v}` is not a valid space: a letter, then up to 42 letters, digits, `_` or `-`, not one of {RESERVED_SPACES:?}"));
    }
    ok.then(|| v.clone())
}

fn view(r: &mut Report, v: &RawView) -> Option<ViewRef> {
    let space = space_id(r, &v.space, "cdf.view.space");
    let external_id = identifier(r, &v.external_id, "cdf.view.external_id", 255);
    let version = identifier(r, &v.version, "cdf.view.version", 43);
    Some(ViewRef {
        space: space?,
        external_id: external_id?,
        version: version?,
    })
}

/// `host` or `host:port` for rewriting upload URLs.
fn host(r: &mut Report, s: &Str) -> Option<String> {
    let v = s.get_ref().trim();
    let parsed = Url::parse(&format!("https://{v}/")).ok();
    let ok = parsed.as_ref().is_some_and(|u| {
        let rebuilt = match u.port() {
            Some(p) => format!("{}:{p}", u.host_str().unwrap_or_default()),
            None => u.host_str().unwrap_or_default().to_owned(),
        };
        rebuilt.eq_ignore_ascii_case(v) && u.path() == "/"
    });
    if !ok {
        r.at(
            s.span(),
            "cdf.upload_url_host",
            format!("`{v}` is not a host: expected `host` or `host:port`, without scheme or path"),
        );
    }
    ok.then(|| v.to_owned())
}

fn auth(
    r: &mut Report,
    raw: &Spanned<RawAuth>,
    insecure: bool,
    base_url: Option<&Url>,
) -> Option<AuthSettings> {
    let a = raw.get_ref();
    if let Some(s) = &a.client_secret {
        let msg = "a secret must not be written into the config file: give it by reference with client_secret_env, client_secret_file or client_secret_credential";
        r.at(s.span(), "cdf.auth.client_secret", msg);
    }
    let uses_credentials = a.token_url.is_some()
        || a.client_id.is_some()
        || a.client_secret_env.is_some()
        || a.client_secret_file.is_some()
        || a.client_secret_credential.is_some()
        || a.scopes.is_some()
        || a.audience.is_some()
        || a.resource.is_some();
    match &a.token_file {
        Some(f) if uses_credentials => {
            let msg = "token_file cannot be combined with client credentials (token_url, client_id, client_secret_*, scopes, audience, resource): choose one method";
            r.at(f.span(), "cdf.auth.token_file", msg);
            None
        }
        Some(f) => absolute(r, f, "cdf.auth.token_file").map(AuthSettings::TokenFile),
        None => client_credentials(r, raw, insecure, base_url).map(AuthSettings::ClientCredentials),
    }
}

fn client_credentials(
    r: &mut Report,
    raw: &Spanned<RawAuth>,
    insecure: bool,
    base_url: Option<&Url>,
) -> Option<ClientCredentials> {
    let a = raw.get_ref();
    let need = "client credentials need token_url, client_id and one of client_secret_env, client_secret_file, client_secret_credential (or use token_file alone)";
    let token_url = match &a.token_url {
        Some(s) => url(r, s, "cdf.auth.token_url", insecure),
        None => {
            r.at(raw.span(), "cdf.auth.token_url", format!("missing: {need}"));
            None
        }
    };
    let client_id = match &a.client_id {
        Some(s) => text(r, s, "cdf.auth.client_id", 1024),
        None => {
            r.at(raw.span(), "cdf.auth.client_id", format!("missing: {need}"));
            None
        }
    };
    let client_secret = secret_source(r, raw);
    let scopes = match &a.scopes {
        Some(list) => list
            .get_ref()
            .iter()
            .map(|s| text(r, s, "cdf.auth.scopes", 1024))
            .collect::<Option<Vec<_>>>(),
        None => base_url.map(|u| vec![format!("{}/.default", u.origin().ascii_serialization())]),
    };
    let audience = a
        .audience
        .as_ref()
        .map(|s| text(r, s, "cdf.auth.audience", 1024));
    let resource = a
        .resource
        .as_ref()
        .map(|s| text(r, s, "cdf.auth.resource", 1024));
    Some(ClientCredentials {
        token_url: token_url?,
        client_id: client_id?,
        client_secret: client_secret?,
        scopes: scopes?,
        audience: audience.map_or(Some(None), |v| v.map(Some))?,
        resource: resource.map_or(Some(None), |v| v.map(Some))?,
    })
}

/// Exactly one of `client_secret_env`, `client_secret_file`, `client_secret_credential`.
fn secret_source(r: &mut Report, raw: &Spanned<RawAuth>) -> Option<SecretSource> {
    let a = raw.get_ref();
    let given: Vec<(&str, &Str)> = [
        ("client_secret_env", &a.client_secret_env),
        ("client_secret_file", &a.client_secret_file),
        ("client_secret_credential", &a.client_secret_credential),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    .collect();
    let (key, value) = match given.as_slice() {
        [one] => *one,
        [] => {
            let msg = "missing client secret source: set exactly one of client_secret_env (a variable name), client_secret_file (an absolute path) or client_secret_credential (a systemd credential name)";
            r.at(raw.span(), "cdf.auth", msg);
            return None;
        }
        [(first, _), rest @ ..] => {
            for (k, v) in rest {
                r.at(
                    v.span(),
                    format!("cdf.auth.{k}"),
                    format!(
                        "more than one client secret source ({first} and {k}): set exactly one"
                    ),
                );
            }
            return None;
        }
    };
    secret_reference(r, key, value)
}

/// Checks the one secret reference given. The value is never echoed: a secret pasted
/// by mistake where its reference belongs must not be printed.
fn secret_reference(r: &mut Report, key: &str, value: &Str) -> Option<SecretSource> {
    let name = value.get_ref();
    let (source, expected) = match key {
        "client_secret_file" => (
            Path::new(name)
                .is_absolute()
                .then(|| SecretSource::File(normalize(Path::new(name)))),
            "expected an absolute path to the file holding the secret",
        ),
        "client_secret_env" => (
            valid_env_name(name).then(|| SecretSource::Env(name.clone())),
            "expected the NAME of an environment variable (letters, digits, `_`), not its value",
        ),
        _ => (
            (!name.is_empty() && !name.contains('/') && name != "." && name != "..")
                .then(|| SecretSource::Credential(name.clone())),
            "expected a systemd credential name (as in LoadCredential=NAME:...), without `/`",
        ),
    };
    if source.is_none() {
        r.at(value.span(), format!("cdf.auth.{key}"), expected);
    }
    source
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
