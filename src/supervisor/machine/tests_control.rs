//! The control socket's commands and the snapshot, with synthetic events
//! and a fake clock (helpers from `tests.rs`).

use std::time::Duration;

use super::tests::*;
use super::*;
use crate::status::{Phase as Shown, SlotState};
use crate::supervisor::events::{Command, Peer};
use crate::supervisor::report::{Report, Why};
use crate::vocab::Scale;

const ROOT: Peer = Peer { pid: 42, uid: 0 };

fn control(m: &mut Machine, c: Command, at: Instant) -> Vec<Action> {
    m.on_event(
        Event::Control {
            command: c,
            program: None,
            by: ROOT,
        },
        at,
    )
}

fn refused(a: &[Action]) -> bool {
    reports(a).iter().any(|r| {
        matches!(
            r,
            Report::Refused { .. } | Report::AtMost { .. } | Report::Ignored { .. }
        )
    })
}

#[test]
fn reload_does_what_hup_does_even_when_a_rule_takes_hup_away() {
    let mut s = settings(2, false);
    s.signal_map = vec![SignalRule {
        from: Signal::HUP,
        to: None,
    }];
    let (mut m, t0) = running_with(s);
    assert!(
        acts(sig(&mut m, Signal::HUP, t0)).is_empty(),
        "the rule drops HUP"
    );
    let a = control(&mut m, Command::Reload, t0);
    assert!(!refused(&a));
    assert!(matches!(
        reports(&a)[..],
        [
            Report::Requested { .. },
            Report::Reloading { program: None }
        ]
    ));
    assert_eq!(acts(a), vec![Action::Replan { program: 0 }]);
    let a = acts(m.on_event(
        Event::Replanned {
            program: 0,
            count: None,
        },
        t0,
    ));
    assert_eq!(
        a,
        vec![Action::SpawnWorker {
            slot: slot(0),
            replacement: true,
            workers: 2
        }]
    );
    assert!(m.snapshot(t0).programs[0].rolling);
}

#[test]
fn scale_is_bounded_like_ttin_and_ttou() {
    let mut s = settings(2, false);
    s.programs[0].max_count = 4;
    let (mut m, t0) = running_with(s);
    let a = control(&mut m, Command::Scale(Scale::By(1)), t0);
    assert_eq!(
        acts(a),
        vec![Action::SpawnWorker {
            slot: slot(2),
            replacement: false,
            workers: 3
        }]
    );
    spawned(&mut m, 2, false, 102, t0);
    // Above the maximum: refused, nothing changes.
    let a = control(&mut m, Command::Scale(Scale::To(5)), t0);
    assert!(refused(&a), "{a:?}");
    assert!(acts(a).is_empty());
    // +5 stops at the maximum, as five TTINs would.
    let a = control(&mut m, Command::Scale(Scale::By(5)), t0);
    assert!(!refused(&a));
    assert_eq!(acts(a).len(), 1);
    assert_eq!(m.worker_count(0), 4);
    spawned(&mut m, 3, false, 103, t0);
    let a = control(&mut m, Command::Scale(Scale::By(1)), t0);
    assert!(matches!(reports(&a)[..], [_, Report::AtMost { max: 4 }]));
    // Down to 1: the three last slots' workers are stopped.
    let a = acts(control(&mut m, Command::Scale(Scale::To(1)), t0));
    assert_eq!(
        a,
        [103, 102, 101].map(|p| Action::Stop {
            pid: pid(p),
            signal: Signal::TERM
        })
    );
    // -3 from 1 stays at 1, as TTOU does.
    let a = control(&mut m, Command::Scale(Scale::By(-3)), t0);
    assert!(acts(a).is_empty());
    assert_eq!(m.worker_count(0), 1);
    let a = control(&mut m, Command::Scale(Scale::To(1)), t0);
    assert!(matches!(
        reports(&a)[..],
        [_, Report::AlreadyAt { count: 1 }]
    ));
}

#[test]
fn stop_does_what_term_does_and_a_second_stop_kills_nothing() {
    let mut s = settings(2, false);
    s.shutdown_delay = Duration::from_secs(5);
    s.signal_map = vec![SignalRule {
        from: Signal::TERM,
        to: None,
    }];
    let (mut m, t0) = running_with(s);
    let a = control(&mut m, Command::Stop, t0);
    assert!(!refused(&a));
    assert!(reports(&a).contains(&Report::Stopping {
        delay: Some(Duration::from_secs(5))
    }));
    assert!(
        !reports(&a)
            .iter()
            .any(|r| matches!(r, Report::Shutdown { .. })),
        "no SIGTERM is named: none came"
    );
    assert_eq!(m.snapshot(t0).phase, Shown::Draining);
    let a = control(&mut m, Command::Stop, after(t0, 10));
    assert!(refused(&a));
    assert!(acts(a).is_empty(), "a second stop kills nothing");
    let a = acts(tick(&mut m, after(t0, 5000)));
    assert_eq!(
        a,
        [100, 101].map(|p| Action::Stop {
            pid: pid(p),
            signal: Signal::TERM
        })
    );
}

#[test]
fn a_plain_child_can_be_stopped_but_not_reloaded_or_scaled() {
    let (mut m, t0) = running(1, true);
    for c in [Command::Reload, Command::Scale(Scale::By(1))] {
        let a = control(&mut m, c, t0);
        assert!(refused(&a), "{c}");
        assert!(acts(a).is_empty());
    }
    let a = acts(control(&mut m, Command::Stop, t0));
    assert_eq!(
        a,
        vec![Action::Stop {
            pid: pid(100),
            signal: Signal::TERM
        }]
    );
}

#[test]
fn commands_before_the_workers_and_while_stopping_are_refused() {
    let mut m = Machine::new(settings(2, false));
    let t0 = Instant::now();
    assert_eq!(m.start(), vec![Action::Bind]);
    assert_eq!(m.snapshot(t0).phase, Shown::Binding);
    for c in [Command::Reload, Command::Scale(Scale::To(3))] {
        let a = control(&mut m, c, t0);
        assert!(refused(&a) && acts(a).is_empty(), "{c}");
    }
    let (mut m, t0) = running(2, false);
    sig(&mut m, Signal::TERM, t0);
    for c in [
        Command::Reload,
        Command::Scale(Scale::By(-1)),
        Command::Stop,
    ] {
        let a = control(&mut m, c, t0);
        assert!(refused(&a) && acts(a).is_empty(), "{c}");
    }
}

#[test]
fn the_snapshot_follows_starting_ready_and_stopping() {
    let mut m = Machine::new(settings(2, false));
    let t0 = Instant::now();
    m.start();
    m.on_event(Event::Bound, t0);
    spawned(&mut m, 0, false, 100, t0);
    spawned(&mut m, 1, false, 101, t0);
    let s = m.snapshot(after(t0, 500));
    assert_eq!(s.phase, Shown::Running);
    assert!(!s.ready, "starting workers are not ready");
    assert_eq!(s.programs[0].slots[0].state, SlotState::Starting);
    assert_eq!(
        s.programs[0].slots[0].worker.as_ref().unwrap().uptime_s,
        0.5
    );
    m.on_event(Event::Ready { pid: pid(100) }, after(t0, 600));
    assert!(!m.snapshot(after(t0, 600)).ready, "one slot still starts");
    m.on_event(Event::Ready { pid: pid(101) }, after(t0, 700));
    let s = m.snapshot(after(t0, 700));
    assert!(s.ready && !s.stopping);
    assert_eq!(s.programs[0].ready, 2);
    let w = s.programs[0].slots[1].worker.as_ref().unwrap();
    assert_eq!((w.pid, w.ready, w.ready_after_s), (101, true, Some(0.7)));
    sig(&mut m, Signal::TERM, after(t0, 800));
    let s = m.snapshot(after(t0, 800));
    assert!(!s.ready && s.stopping);
    assert_eq!(s.phase, Shown::Stopping);
    assert_eq!(s.programs[0].slots[0].state, SlotState::Stopping);
}

#[test]
fn the_snapshot_counts_restarts_by_reason_and_keeps_them_past_a_scale_down() {
    let (mut m, t0) = running(2, false);
    let d = m.next_deadline();
    let s = m.snapshot(t0);
    assert_eq!(m.next_deadline(), d, "a snapshot arms no timer");
    assert_eq!(s.programs[0].restarts.total(), 0);
    // Every reason the machine counts has its field in the status.
    let mut r = crate::status::Restarts::default();
    for why in Why::ALL {
        assert!(r.add(why.as_str(), 1), "{why:?} has no field");
    }
    assert_eq!(r.total(), Why::ALL.len() as u32);
    // Slot 1 crashes quickly: a restart after the backoff.
    let t1 = after(t0, 500);
    exited(&mut m, 101, Status::Exited(3), t1);
    let s = m.snapshot(t1);
    let sl = &s.programs[0].slots[1];
    assert_eq!(sl.state, SlotState::Backoff);
    assert_eq!(sl.restart_in_s, Some(0.1));
    assert_eq!(sl.restarts.crash, 1);
    let e = sl.last_exit.as_ref().unwrap();
    assert_eq!((e.code, e.reason, e.oom), (Some(3), Some("crash"), false));
    assert!(!s.ready);
    // Killed by a signal: the name, no code.
    tick(&mut m, after(t1, 100));
    spawned(&mut m, 1, false, 201, after(t1, 100));
    exited(&mut m, 201, Status::Signaled(Signal::KILL), after(t1, 200));
    let s = m.snapshot(after(t1, 200));
    let e = s.programs[0].slots[1].last_exit.as_ref().unwrap();
    assert_eq!((e.code, e.signal.as_deref()), (None, Some("KILL")));
    assert_eq!(s.programs[0].restarts.crash, 2);
    // The slot goes away; the program's counter does not go down.
    sig(&mut m, Signal::TTOU, after(t1, 300));
    let s = m.snapshot(after(t1, 300));
    assert_eq!(s.programs[0].slots.len(), 1);
    assert_eq!(s.programs[0].restarts.crash, 2);
    assert_eq!(s.programs[0].restarts.scale, 0);
    sig(&mut m, Signal::TTIN, after(t1, 400));
    assert_eq!(m.snapshot(after(t1, 400)).programs[0].restarts.scale, 1);
}

#[test]
fn the_snapshot_shows_a_replacement_and_the_retiring_worker() {
    let (mut m, t0) = running(1, false);
    control(&mut m, Command::Reload, t0);
    m.on_event(
        Event::Replanned {
            program: 0,
            count: None,
        },
        t0,
    );
    spawned(&mut m, 0, true, 200, t0);
    let s = m.snapshot(t0);
    let sl = &s.programs[0].slots[0];
    assert_eq!(sl.worker.as_ref().unwrap().pid, 100);
    assert_eq!(sl.replacement.as_ref().unwrap().pid, 200);
    assert!(s.ready, "the old worker serves during the roll");
    m.on_event(Event::Ready { pid: pid(200) }, after(t0, 10));
    let s = m.snapshot(after(t0, 10));
    let p = &s.programs[0];
    assert_eq!(p.slots[0].worker.as_ref().unwrap().pid, 200);
    assert_eq!(p.retiring[0].pid, 100);
    assert_eq!(p.restarts.reload, 1);
}

#[test]
fn the_snapshot_names_the_pre_start_step() {
    let mut m = Machine::new(Settings {
        steps: vec![Step::Run {
            argv: vec!["migrate".into()],
            timeout: Duration::from_secs(5),
        }],
        ..settings(1, false)
    });
    let t0 = Instant::now();
    m.start();
    m.on_event(Event::StepSpawned { pid: pid(50) }, t0);
    let s = m.snapshot(t0);
    assert_eq!(s.phase, Shown::Prestart);
    assert_eq!(s.step.as_deref(), Some("1/1"));
    assert!(!s.ready);
}
