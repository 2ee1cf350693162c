//! Acknowledged means durable: a power cut at a random moment under load loses no delivery
//! that was acknowledged before it (issue 16, item 1).
//!
//! The cut is modelled by a VFS shim ([`vfs`]): it keeps each database file as it was at its
//! last fsync, the only thing a disk holds when the power goes, and at the cut writes those
//! images to a fresh folder; Docobo then opens them there, as after a reboot. The same test
//! with `database.synchronous = normal` must lose deliveries, which shows that the cut is
//! real enough to catch the bug that the default setting fixes.

mod vfs;

use std::collections::HashSet;
use std::time::Duration;

use docobo::db::Db;
use docobo_testkit::app::TestApp;
use docobo_testkit::load::{Load, message_id};
use rand::Rng as _;

/// What one cut found.
#[derive(Debug)]
struct Cut {
    acked: usize,
    lost: usize,
}

/// Starts the app on a tracked folder, loads it with deliveries and cuts the power `cuts`
/// times at random moments (a cut only copies the disk's durable image, so the load goes on),
/// then checks each image against what had been acknowledged before its cut.
async fn cut_under_load(synchronous: &str, cuts: usize) -> Vec<Cut> {
    let data = tempfile::tempdir().expect("data folder");
    let data_dir = data.path().canonicalize().expect("canonical");
    vfs::track(&data_dir);
    let db_path = data_dir.join("docobo.db");
    let app = TestApp::builder()
        .env("DOCOBO_DATABASE__PATH", &db_path.display().to_string())
        .env("DOCOBO_DATABASE__SYNCHRONOUS", synchronous)
        .env("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0")
        .start()
        .await;
    let load = Load::start(crate::helpers::load_shop(&app).await, 16, 0, 0);
    let mut images = Vec::new();
    for _ in 0..cuts {
        let after = rand::rng().random_range(20..150);
        tokio::time::sleep(Duration::from_millis(after)).await;
        // Everything acknowledged before this line must be in the image the cut writes.
        let acked_before = load.acked();
        let disk = tempfile::tempdir().expect("the disk after the cut");
        let written = vfs::cut(&data_dir, disk.path());
        assert!(
            written.iter().any(|p| p.ends_with("docobo.db")),
            "the database file was never fsynced: {written:?}"
        );
        images.push((acked_before, disk));
    }
    let _ = load.stop().await;
    app.stop().await;

    let mut found = Vec::new();
    for (acked_before, disk) in images {
        // The reboot: Docobo's own open (WAL recovery, migrations) on the image.
        let (db, _) = Db::open(&disk.path().join("docobo.db"), Duration::from_secs(5))
            .expect("Docobo opens the image");
        let (integrity, present) = db
            .read(|conn| {
                let integrity: String =
                    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
                let mut ids = conn.prepare("SELECT external_event_id FROM webhook_events")?;
                let present = ids
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<HashSet<_>, _>>()?;
                Ok((integrity, present))
            })
            .await
            .expect("read the image");
        assert_eq!(integrity, "ok");
        let lost = acked_before
            .iter()
            .filter(|n| !present.contains(&message_id(**n)))
            .count();
        found.push(Cut {
            acked: acked_before.len(),
            lost,
        });
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_loses_no_acknowledged_delivery() {
    let cuts = cut_under_load("full", 20).await;
    eprintln!("synchronous=full: {cuts:?}");
    assert!(cuts.iter().any(|c| c.acked > 0), "no load: {cuts:?}");
    assert!(cuts.iter().all(|c| c.lost == 0), "lost: {cuts:?}");
}

/// The control: the cut does catch the loss that `synchronous = normal` allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_synchronous_normal_the_same_cut_loses_acknowledged_deliveries() {
    let cuts = cut_under_load("normal", 20).await;
    eprintln!("synchronous=normal: {cuts:?}");
    assert!(cuts.iter().any(|c| c.lost > 0), "nothing lost: {cuts:?}");
}
