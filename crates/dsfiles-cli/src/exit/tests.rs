use super::*;

#[test]
fn codes_are_the_documented_ones() {
    let table = [
        (Exit::Success, 0),
        (Exit::Failed, 1),
        (Exit::Usage, 2),
        (Exit::Access, 3),
        (Exit::Api, 4),
        (Exit::Busy, 5),
        (Exit::Cancelled, 130),
    ];
    for (exit, code) in table {
        assert_eq!(exit.code(), code, "{exit:?}");
    }
}

#[test]
fn errors_map_through_their_chain() {
    let usage = anyhow::Error::new(UsageError::new("no token")).context("cannot start");
    assert_eq!(Exit::from_error(&usage), Exit::Usage);

    let sink = anyhow::Error::new(sink::Error::UnsupportedScheme {
        dest: "ftp://x".into(),
        scheme: "ftp".into(),
    });
    assert_eq!(Exit::from_error(&sink), Exit::Usage);

    let sink = anyhow::Error::new(sink::Error::NotFound { key: "a".into() }).context("mid-run");
    assert_eq!(Exit::from_error(&sink), Exit::Failed);

    let fenced = anyhow::Error::new(sink::Error::Fenced { key: "a".into() }).context("mid-run");
    assert_eq!(Exit::from_error(&fenced), Exit::Busy);

    let other = anyhow::anyhow!("something else");
    assert_eq!(Exit::from_error(&other), Exit::Failed);
}

#[test]
fn one_line_keeps_the_chain_on_one_line() {
    let err = anyhow::anyhow!("DS said:\n  bad\tthing").context("cannot list démarche `1`");
    assert_eq!(
        one_line(&err),
        "cannot list démarche `1`: DS said: bad thing"
    );
}

#[test]
fn a_busy_destination_exits_5() {
    let at = chrono::DateTime::UNIX_EPOCH;
    let busy = dsfiles_core::Error::DestinationBusy(Box::new(dsfiles_core::Busy {
        dest: "/data".into(),
        scope: dsfiles_core::lease::LeaseScope::Sync { demarche: 1 },
        key: ".dsfiles/demarches/1/lease".into(),
        holder: dsfiles_core::wire::Holder {
            host: "h".into(),
            pid: 1,
            replica: None,
            tool: "dsfiles".into(),
            process: None,
        },
        since: at,
        expires_at: at,
    }));
    let err = anyhow::Error::new(busy).context("sync of démarche `1` to `/data` stopped");
    assert_eq!(Exit::from_error(&err), Exit::Busy);
    assert_eq!(Exit::from_error(&err).code(), 5);
}
