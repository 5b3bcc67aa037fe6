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
fn targets_are_plain_http_authorities_and_paths() {
    for (url, authority, path) in [
        (
            "http://127.0.0.1:8080/healthz",
            "127.0.0.1:8080",
            "/healthz",
        ),
        ("http://localhost/readyz", "localhost:80", "/readyz"),
        ("http://[::1]:81/a?b=c", "[::1]:81", "/a?b=c"),
        ("http://svc:8080", "svc:8080", "/"),
    ] {
        let target = Target::of(&Url::parse(url).unwrap()).unwrap();
        let expected = Target {
            authority: authority.to_owned(),
            path: path.to_owned(),
        };
        assert_eq!(target, expected, "{url}");
    }
    for url in ["https://127.0.0.1/healthz", "ftp://x/", "unix:/run/sock"] {
        let err = Target::of(&Url::parse(url).unwrap()).unwrap_err();
        assert!(err.is::<UsageError>(), "{url}");
        assert!(err.to_string().contains(url), "{err}");
    }
}

#[test]
fn status_lines() {
    for (line, expected) in [
        ("HTTP/1.1 200 OK\r\n", Ok(200)),
        ("HTTP/1.0 503 Service Unavailable\r\n", Ok(503)),
        ("HTTP/1.1 204\r\n", Ok(204)),
        ("", Err("closed without an answer")),
        (
            "HTTP/2 200\r\n",
            Err("`HTTP/2 200` is not an HTTP/1.x status line"),
        ),
        ("SSH-2.0-OpenSSH\r\n", Err("not an HTTP/1.x status line")),
        ("HTTP/1.1 2000 OK\r\n", Err("not an HTTP/1.x status line")),
        ("HTTP/1.1 +20 OK\r\n", Err("not an HTTP/1.x status line")),
    ] {
        let actual = parse_status_line(line).map_err(|e| e.to_string());
        match expected {
            Ok(code) => assert_eq!(actual, Ok(code), "{line:?}"),
            Err(message) => {
                let err = actual.unwrap_err();
                assert!(err.contains(message), "{line:?}: {err}");
            }
        }
    }
}
