use super::*;

#[test]
fn the_default_url_is_healthz_on_the_listen_port_over_loopback() {
    for (listen, expected) in [
        (None, "http://127.0.0.1:8080/healthz"),
        (Some(""), "http://127.0.0.1:8080/healthz"),
        (Some("0.0.0.0:9000"), "http://127.0.0.1:9000/healthz"),
        (Some("[::]:9000"), "http://[::1]:9000/healthz"),
        (Some("10.1.2.3:8081"), "http://10.1.2.3:8081/healthz"),
        (Some(" 127.0.0.1:80 "), "http://127.0.0.1/healthz"),
    ] {
        assert_eq!(
            default_url(listen).unwrap().as_str(),
            expected,
            "{listen:?}"
        );
    }
    let err = default_url(Some("localhost")).unwrap_err();
    assert!(err.is::<UsageError>());
    assert!(
        err.to_string().contains("`DSFILES_LISTEN` is `localhost`"),
        "{err}"
    );
}

#[test]
fn only_plain_http_urls_are_checked() {
    for url in [
        "http://127.0.0.1:8080/healthz",
        "http://[::1]:81/a?b=c",
        "http://svc:8080",
    ] {
        assert!(plain_http(Url::parse(url).unwrap()).is_ok(), "{url}");
    }
    for url in ["https://127.0.0.1/healthz", "ftp://x/", "unix:/run/sock"] {
        let err = plain_http(Url::parse(url).unwrap()).unwrap_err();
        assert!(err.is::<UsageError>(), "{url}");
        assert!(err.to_string().contains(url), "{err}");
    }
}
