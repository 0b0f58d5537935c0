//! Rules of `[cdf]` and `[cdf.auth]`.

use super::*;

fn with_base(base: &str, extra: &str) -> String {
    config("", AUTH, "", "").replace(
        "https://westeurope-1.cognitedata.com\"",
        &format!("{base}\"\n{extra}"),
    )
}

#[test]
fn base_url_must_be_https_unless_explicitly_insecure() {
    check(
        &with_base("http://127.0.0.1:4300", ""),
        "http://",
        "cdf.base_url",
        "allow_insecure_http = true",
    );
    let s = ok(&with_base(
        "http://127.0.0.1:4300",
        "allow_insecure_http = true",
    ));
    assert!(s.cdf.allow_insecure_http);
    check(
        &with_base("ftp://x.example", ""),
        "ftp://",
        "cdf.base_url",
        "scheme `ftp`",
    );
    check(
        &with_base("not a url", ""),
        "not a url",
        "cdf.base_url",
        "invalid URL",
    );
    check(
        &with_base("https://x.example/api/v1", ""),
        "https://x",
        "cdf.base_url",
        "without a path",
    );
    check(
        &with_base("https://user:pw@x.example", ""),
        "https://user",
        "cdf.base_url",
        "credentials",
    );
    let auth = AUTH.replace("https://login", "http://login");
    check(
        &config("", &auth, "", ""),
        "http://login",
        "cdf.auth.token_url",
        "plain http is refused",
    );
}

#[test]
fn project_proxy_host_and_ca_file() {
    check(
        &config("", AUTH, "", "").replace("\"acme\"", "\"a/b\""),
        "\"a/b\"",
        "cdf.project",
        "not a CDF project",
    );
    check(
        &config("proxy = \"socks5://p:1080\"", AUTH, "", ""),
        "proxy",
        "cdf.proxy",
        "scheme `socks5`",
    );
    let s = ok(&config(
        "proxy = \"http://proxy.local:3128\"\nupload_url_host = \"files.example.com:8443\"\nca_file = \"/etc/ssl/corp.pem\"",
        AUTH,
        "",
        "",
    ));
    assert_eq!(
        s.cdf.proxy.map(|u| u.to_string()).as_deref(),
        Some("http://proxy.local:3128/")
    );
    assert_eq!(
        s.cdf.upload_url_host.as_deref(),
        Some("files.example.com:8443")
    );
    check(
        &config(
            "upload_url_host = \"https://files.example.com/x\"",
            AUTH,
            "",
            "",
        ),
        "upload_url_host",
        "cdf.upload_url_host",
        "not a host",
    );
    check(
        &config("ca_file = \"corp.pem\"", AUTH, "", ""),
        "ca_file",
        "cdf.ca_file",
        "relative path",
    );
}

#[test]
fn data_modeling_target_needs_a_space_and_defaults_the_view() {
    check(
        &config("target = \"data-modeling\"", AUTH, "", ""),
        "target",
        "cdf.space",
        "needs `space`",
    );
    let s = ok(&config(
        "target = \"data-modeling\"\nspace = \"edge-files\"",
        AUTH,
        "",
        "",
    ));
    let Target::DataModeling { space, view } = s.cdf.target else {
        panic!("dm")
    };
    assert_eq!(space, "edge-files");
    assert_eq!(
        (
            view.space.as_str(),
            view.external_id.as_str(),
            view.version.as_str()
        ),
        ("cdf_cdm", "CogniteFile", "v1")
    );
    let custom = "target = \"data-modeling\"\nspace = \"s1\"\nview = { space = \"cdf_extraction_extensions\", external_id = \"CogniteExtractorFile\", version = \"v1\" }";
    assert!(
        matches!(ok(&config(custom, AUTH, "", "")).cdf.target, Target::DataModeling { view, .. } if view.external_id == "CogniteExtractorFile")
    );
    check(
        &config("target = \"data-modeling\"\nspace = \"1bad\"", AUTH, "", ""),
        "1bad",
        "cdf.space",
        "not a valid space",
    );
    check(
        &config(
            "target = \"data-modeling\"\nspace = \"system\"",
            AUTH,
            "",
            "",
        ),
        "\"system\"",
        "cdf.space",
        "not a valid space",
    );
    check(
        &config("space = \"s1\"", AUTH, "", ""),
        "space",
        "cdf.space",
        "only used with target = \"data-modeling\"",
    );
    check(
        &config("target = \"graph\"", AUTH, "", ""),
        "graph",
        "cdf.target",
        "`classic` or `data-modeling`",
    );
}

#[test]
fn classic_only_fields_are_refused_for_data_modeling() {
    let dm = "target = \"data-modeling\"\nspace = \"s1\"";
    check(
        &config(dm, AUTH, "labels = [\"x\"]", ""),
        "labels",
        "roots[0].labels",
        "not supported with target",
    );
    check(
        &config(dm, AUTH, "data_set_id = 5", ""),
        "data_set_id",
        "roots[0].data_set_id",
        "not supported",
    );
    check(
        &config(dm, AUTH, "asset_ids = [5]", ""),
        "asset_ids",
        "roots[0].asset_ids",
        "not supported",
    );
    check(
        &config(dm, AUTH, "security_categories = [5]", ""),
        "security_categories",
        "roots[0].security_categories",
        "not supported",
    );
}

#[test]
fn extraction_pipeline_and_remote_config() {
    check(
        &config("remote_config = true", AUTH, "", ""),
        "remote_config",
        "cdf.remote_config",
        "needs `extraction_pipeline`",
    );
    let s = ok(&config(
        "remote_config = true\nextraction_pipeline = \"gw01-files\"",
        AUTH,
        "",
        "",
    ));
    assert_eq!(s.cdf.extraction_pipeline.as_deref(), Some("gw01-files"));
    assert!(s.cdf.remote_config);
}

#[test]
fn exactly_one_secret_source_given_by_reference() {
    let no_secret = "token_url = \"https://l.example/t\"\nclient_id = \"c\"";
    check(
        &config("", no_secret, "", ""),
        "[cdf.auth]",
        "cdf.auth",
        "missing client secret source",
    );
    let two = format!("{AUTH}\nclient_secret_file = \"/etc/cdf-syncd/secret\"");
    check(
        &config("", &two, "", ""),
        "client_secret_file",
        "cdf.auth.client_secret_file",
        "more than one client secret source",
    );
    let inline = format!("{AUTH}\nclient_secret = \"hunter2-inline\"");
    let text = config("", &inline, "", "");
    check(
        &text,
        "client_secret =",
        "cdf.auth.client_secret",
        "must not be written into the config",
    );
    assert!(
        !errors(&text)
            .iter()
            .any(|e| e.to_string().contains("hunter2"))
    );
    let pasted = AUTH.replace("\"SECRET\"", "\"s3cr3t-value with spaces!\"");
    let text = config("", &pasted, "", "");
    check(
        &text,
        "client_secret_env",
        "cdf.auth.client_secret_env",
        "NAME of an environment variable",
    );
    assert!(
        !errors(&text)
            .iter()
            .any(|e| e.to_string().contains("s3cr3t"))
    );
    let file = AUTH.replace(
        "client_secret_env = \"SECRET\"",
        "client_secret_file = \"relative/secret\"",
    );
    check(
        &config("", &file, "", ""),
        "client_secret_file",
        "cdf.auth.client_secret_file",
        "absolute path",
    );
    let cred = AUTH.replace(
        "client_secret_env = \"SECRET\"",
        "client_secret_credential = \"cdf-secret\"",
    );
    let AuthSettings::ClientCredentials(cc) = ok(&config("", &cred, "", "")).cdf.auth else {
        panic!()
    };
    assert_eq!(
        cc.client_secret,
        SecretSource::Credential("cdf-secret".into())
    );
}

#[test]
fn client_credentials_need_token_url_and_client_id() {
    check(
        &config("", "client_id = \"c\"\nclient_secret_env = \"S\"", "", ""),
        "[cdf.auth]",
        "cdf.auth.token_url",
        "missing",
    );
    check(
        &config(
            "",
            "token_url = \"https://l.example/t\"\nclient_secret_env = \"S\"",
            "",
            "",
        ),
        "[cdf.auth]",
        "cdf.auth.client_id",
        "missing",
    );
    let full = format!(
        "{AUTH}\nscopes = [\"api://x/.default\", \"openid\"]\naudience = \"https://aud\"\nresource = \"https://res\""
    );
    let AuthSettings::ClientCredentials(cc) = ok(&config("", &full, "", "")).cdf.auth else {
        panic!()
    };
    assert_eq!(cc.scopes, ["api://x/.default", "openid"]);
    assert_eq!(
        (cc.audience.as_deref(), cc.resource.as_deref()),
        (Some("https://aud"), Some("https://res"))
    );
}

#[test]
fn token_file_is_exclusive_and_absolute() {
    let s = ok(&config("", "token_file = \"/run/token\"", "", ""));
    assert!(
        matches!(s.cdf.auth, AuthSettings::TokenFile(p) if p == std::path::Path::new("/run/token"))
    );
    let both = format!("{AUTH}\ntoken_file = \"/run/token\"");
    check(
        &config("", &both, "", ""),
        "token_file",
        "cdf.auth.token_file",
        "cannot be combined",
    );
    check(
        &config("", "token_file = \"token\"", "", ""),
        "token_file",
        "cdf.auth.token_file",
        "relative path",
    );
    let no_auth = config("", AUTH, "", "")
        .replace("[cdf.auth]\n", "")
        .replace(AUTH, "");
    check(&no_auth, "[cdf]", "cdf.auth", "missing [cdf.auth]");
}

#[test]
fn smaller_url_view_and_reference_rules() {
    let text = config("", AUTH, "", "").replace("cognitedata.com\"", "cognitedata.com/?x=1\"");
    check(&text, "base_url", "cdf.base_url", "query or fragment");
    let dm = "target = \"data-modeling\"\nspace = \"s1\"\nview = { space = \"cdf_cdm\", external_id = \"CogniteFile\", version = \"v 1\" }";
    check(
        &config(dm, AUTH, "", ""),
        "view",
        "cdf.view.version",
        "not allowed",
    );
    let cred = AUTH.replace(
        "client_secret_env = \"SECRET\"",
        "client_secret_credential = \"a/b\"",
    );
    check(
        &config("", &cred, "", ""),
        "client_secret_credential",
        "cdf.auth.client_secret_credential",
        "credential name",
    );
    let scopes = format!("{AUTH}\nscopes = [\"\"]");
    check(
        &config("", &scopes, "", ""),
        "scopes",
        "cdf.auth.scopes",
        "must not be empty",
    );
    let AuthSettings::ClientCredentials(cc) =
        ok(&config("", &format!("{AUTH}\nscopes = []"), "", ""))
            .cdf
            .auth
    else {
        panic!("client credentials")
    };
    assert!(cc.scopes.is_empty(), "scopes = [] sends no scope");
}
