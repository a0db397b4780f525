//! Unit tests of the sequencer's internals (ids, clock anchor, deadlines).

use super::*;

#[test]
fn sequence_ids_are_uuid4_and_distinct() {
    let mut ids = IdSource(42);
    let a = ids.next_id();
    let b = ids.next_id();
    assert_ne!(a, b);
    let text = a.to_string();
    assert_eq!(text.len(), 36);
    assert_eq!(&text[14..15], "4");
    assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"));
    // Different seeds, different ids.
    assert_ne!(IdSource(1).next_id(), IdSource(2).next_id());
}

#[test]
fn the_anchor_maps_instants_to_epoch_seconds_both_ways() {
    let base = Instant::now() + Duration::from_secs(10);
    let a = EpochAnchor::new(base, 1000.0);
    assert_eq!(a.mono(base + Duration::from_millis(1500)), 1.5);
    assert_eq!(a.mono(base - Duration::from_millis(250)), -0.25);
    assert_eq!(a.instant_at(2.0), base + Duration::from_secs(2));
    assert_eq!(a.instant_at(-1.0), base - Duration::from_secs(1));
    assert_eq!(a.instant_at(f64::NAN), base);
}

#[test]
fn no_deadline_without_a_running_sequence() {
    let t0 = Instant::now();
    let mut s = Sequencer::new(SequencerSettings::default(), EpochAnchor::new(t0, 0.0), 3);
    assert_eq!(s.next_deadline(), None);
    s.on_state(t0, MachineState::Idle, Substate::NoState);
    assert_eq!(s.next_deadline(), None);
    s.on_state(t0, MachineState::Espresso, Substate::Pour);
    let d = s.next_deadline().expect("the watchdog at least");
    assert_eq!(d, t0 + Duration::from_secs(270));
    // Once acted on (or passed), a deadline is not offered again.
    s.on_tick(t0 + Duration::from_secs(271));
    assert!(!s.is_sequence_running());
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn invalid_settings_are_refused_and_leave_the_old_ones() {
    let t0 = Instant::now();
    let mut s = Sequencer::new(SequencerSettings::default(), EpochAnchor::new(t0, 0.0), 3);
    assert!(s.set_line_frequency(55).is_err());
    assert_eq!(s.configured_line_frequency(), 60);
    assert!(s.set_line_frequency(50).is_ok());
    assert_eq!(s.configured_line_frequency(), 50);
    let bad = EspressoControl {
        stop_at_weight: Some(f64::NAN),
        ..EspressoControl::default()
    };
    assert!(s.set_espresso_control(bad).is_err());
    assert_eq!(s.espresso_control().stop_at_weight, None);
    assert!(Sequencer::try_new(
        SequencerSettings {
            sequence_watchdog: 0.0,
            ..SequencerSettings::default()
        },
        EpochAnchor::new(t0, 0.0),
        1
    )
    .is_err());
    s.set_drip_allowance(100.0);
    assert_eq!(s.drip_allowance(), s.stop_tuning().drip_allowance_max);
}
