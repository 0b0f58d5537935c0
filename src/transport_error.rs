//! Transport failures (reqwest) in words an operator can act on.
//!
//! reqwest's own message is only "error sending request for url (...)"; the cause
//! (connection refused, a DNS failure, a TLS certificate the client does not trust)
//! sits in its source chain. [`describe`] appends the innermost cause, and for an
//! untrusted certificate says what to do: a TLS-inspecting proxy's CA goes into
//! `[cdf] ca_file`. Used by the CDF client's errors and the token endpoint's.

use std::error::Error;

/// What [`describe`] says of an untrusted certificate (an operator must act on it).
pub const UNTRUSTED_CERTIFICATE: &str = "the server's certificate is not trusted";

/// `e`'s message, its innermost cause, and a hint for certificate failures.
pub fn describe(e: &(dyn Error + 'static)) -> String {
    let top = e.to_string();
    let mut cause = None;
    let mut next = e.source();
    while let Some(source) = next {
        cause = Some(source.to_string());
        next = source.source();
    }
    let Some(cause) = cause.filter(|c| !top.contains(c.as_str())) else {
        return top;
    };
    // rustls words every verification failure "invalid peer certificate: ...", and
    // its error type is not ours to match on; this only picks the hint.
    if cause.contains("certificate") {
        format!(
            "{top}: TLS handshake failed, {UNTRUSTED_CERTIFICATE} ({cause}); \
             if a proxy inspects TLS, give its CA certificate in [cdf] ca_file"
        )
    } else {
        format!("{top}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Chain {
        text: &'static str,
        #[source]
        source: Option<Box<Chain>>,
    }

    fn chain(texts: &[&'static str]) -> Chain {
        let (first, rest) = texts.split_first().expect("one");
        Chain {
            text: first,
            source: (!rest.is_empty()).then(|| Box::new(chain(rest))),
        }
    }

    #[test]
    fn the_innermost_cause_is_named() {
        let e = chain(&[
            "error sending request for url (https://x/)",
            "client error (Connect)",
            "Connection refused (os error 111)",
        ]);
        assert_eq!(
            describe(&e),
            "error sending request for url (https://x/): Connection refused (os error 111)"
        );
        assert_eq!(describe(&chain(&["timed out"])), "timed out");
    }

    #[test]
    fn an_untrusted_certificate_points_at_ca_file() {
        let e = chain(&[
            "error sending request for url (https://x/)",
            "client error (Connect)",
            "invalid peer certificate: UnknownIssuer",
        ]);
        let text = describe(&e);
        assert!(
            text.contains("certificate is not trusted (invalid peer certificate: UnknownIssuer)")
                && text.contains("[cdf] ca_file"),
            "{text}"
        );
    }
}
