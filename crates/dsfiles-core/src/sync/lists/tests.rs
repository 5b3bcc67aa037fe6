use super::*;
use crate::wire::FileStatus;

fn flagged(n: u64, flag: FileStatus) -> ReportLine {
    ReportLine::Flagged(Flagged {
        dossier: n,
        file_id: format!("f{n}"),
        key: format!("{n}/a.pdf"),
        flag,
        detail: "d".to_owned(),
    })
}

fn failed(n: u64) -> ReportLine {
    ReportLine::Failed(Failure {
        dossier: n,
        file_id: None,
        key: format!("{n}/b.pdf"),
        reason: "r".to_owned(),
        code: None,
    })
}

/// The lines of the object at `key`.
async fn lines(sink: &dyn Sink, key: &str) -> Vec<ReportLine> {
    let bytes = sink
        .get_small(key)
        .await
        .unwrap()
        .expect("the lists object");
    let text = std::str::from_utf8(&bytes).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn short_lists_are_the_report_alone() {
    let sink = crate::sink::memory();
    let mut lists = Lists::default();
    lists.push(flagged(1, FileStatus::Pending));
    lists.push(failed(2));
    lists.push(ReportLine::DeletedDossier { dossier: 3 });
    lists.push(ReportLine::Warning {
        message: "w".to_owned(),
    });
    assert_eq!(lists.publish(sink.as_ref(), "r").await, None);
    assert_eq!(lists.flagged.0.len(), 1);
    assert_eq!(lists.failed.0.len(), 1);
    assert_eq!(lists.deleted.0, [3]);
    assert_eq!(lists.warnings.0, ["w"]);
    let c = lists.counts;
    assert_eq!((c.flagged, c.checksum_mismatch, c.failed), (1, 0, 1));
    assert_eq!((c.deleted_dossiers, c.warnings, c.kept), (1, 1, 0));
    let written = sink.get_small(".dsfiles/runs/r.lists.jsonl").await.unwrap();
    assert_eq!(written, None, "nothing past the report when it is complete");
}

#[tokio::test]
async fn long_lists_keep_their_first_entries_and_write_every_one() {
    let sink = crate::sink::memory();
    let mut lists = Lists::default();
    let mut pushed = Vec::new();
    let over = REPORT_LISTED as u64 + 7;
    for n in 0..over {
        let flag = if n % 3 == 0 {
            FileStatus::ChecksumMismatch
        } else {
            FileStatus::Pending
        };
        // Interleaved, as dossiers end in any order.
        for line in [flagged(n, flag), failed(n)] {
            pushed.push(line.clone());
            lists.push(line);
        }
    }
    let key = lists.publish(sink.as_ref(), "r").await;
    assert_eq!(key.as_deref(), Some(".dsfiles/runs/r.lists.jsonl"));
    assert_eq!(lists.flagged.0.len(), REPORT_LISTED);
    assert_eq!(lists.failed.0.len(), REPORT_LISTED);
    assert_eq!(lists.flagged.0[0].dossier, 0, "the first entries, in order");
    assert_eq!(
        lists.failed.0[REPORT_LISTED - 1].dossier,
        REPORT_LISTED as u64 - 1
    );
    assert_eq!((lists.counts.flagged, lists.counts.failed), (over, over));
    assert_eq!(lists.counts.checksum_mismatch, over.div_ceil(3));
    assert_eq!(lines(sink.as_ref(), &key.unwrap()).await, pushed);
}

/// A list one entry past the limit is enough; an exactly full one is not.
#[tokio::test]
async fn the_object_is_written_only_past_the_limit() {
    for (entries, written) in [(REPORT_LISTED, false), (REPORT_LISTED + 1, true)] {
        let sink = crate::sink::memory();
        let mut lists = Lists::default();
        for n in 0..entries {
            lists.push(ReportLine::Warning {
                message: format!("w{n}"),
            });
        }
        let key = lists.publish(sink.as_ref(), "r").await;
        assert_eq!(key.is_some(), written, "{entries} entries");
        if let Some(key) = key {
            assert_eq!(lines(sink.as_ref(), &key).await.len(), entries);
        }
    }
}
