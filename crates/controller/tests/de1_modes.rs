//! `de1/mode` requests against the simulated DE1: each mode from the states it is valid
//! in, and the refusals (409 conflict, 418 group head controller).

mod common;

use std::time::Duration;

use controller::de1::profile::ProfileOptions;
use controller::de1::{De1, De1Error, Mode, ModeAction};
use de1_protocol::characteristic::Characteristic;
use de1_protocol::state::{MachineState as S, Substate as Sub};
use de1_sim::{Ghc, GroupHeadButton};
use ipc_schema::command::CommandErrorKind;

const T: Duration = Duration::from_secs(60);

async fn reach(de1: &De1, state: S) {
    let got = common::wait_state(de1, T, |s| s.state == state).await;
    assert!(
        got.is_some(),
        "never reached {state}; now {:?}",
        de1.state()
    );
}

async fn reach_sub(de1: &De1, state: S, sub: Sub) {
    let got = common::wait_state(de1, T, |s| s.state == state && s.substate == sub).await;
    assert!(
        got.is_some(),
        "never reached {state},{sub}; now {:?}",
        de1.state()
    );
}

fn requested_states(c: &common::Connected) -> Vec<u8> {
    let uuid = ble::Uuid(Characteristic::RequestedState.uuid());
    c.writes
        .lock()
        .unwrap()
        .iter()
        .filter(|(u, _)| *u == uuid)
        .map(|(_, b)| b[0])
        .collect()
}

fn assert_conflict(r: Result<ModeAction, De1Error>) {
    match r {
        Err(e @ De1Error::StateConflict { .. }) => {
            assert_eq!(e.kind(), CommandErrorKind::Conflict)
        }
        other => panic!("expected a state conflict, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn flows_start_from_idle_and_stop() {
    let (t, _ctl) = common::sim(|_| {});
    let c = common::connect(&t, common::options()).await;
    let de1 = &c.de1;
    de1.upload_profile(
        &common::profile("de1app__classic_italian_espresso"),
        ProfileOptions::default(),
    )
    .await
    .expect("profile");

    for (mode, state) in [
        (Mode::Espresso, S::Espresso),
        (Mode::Steam, S::Steam),
        (Mode::HotWater, S::HotWater),
        (Mode::HotWaterRinse, S::HotWaterRinse),
        (Mode::Clean, S::Clean),
        (Mode::Descale, S::Descale),
        (Mode::Transport, S::AirPurge),
    ] {
        reach_sub(de1, S::Idle, Sub::NoState).await;
        assert_eq!(de1.request_mode(mode).await, Ok(ModeAction::Request(state)));
        reach(de1, state).await;
        // The same mode again is refused while it runs.
        assert_conflict(de1.request_mode(mode).await);
        assert_conflict(de1.request_mode(Mode::Sleep).await);
        assert_eq!(
            de1.request_mode(Mode::Stop).await,
            Ok(ModeAction::Request(S::Idle))
        );
        reach(de1, S::Idle).await;
    }
}

#[tokio::test(start_paused = true)]
async fn sleep_wake_and_the_no_ops() {
    let (t, _ctl) = common::sim(|_| {});
    let c = common::connect(&t, common::options()).await;
    let de1 = &c.de1;
    reach_sub(de1, S::Idle, Sub::NoState).await;
    // Nothing to do while idle.
    for m in [Mode::Stop, Mode::Wake, Mode::EndSteam] {
        assert_eq!(de1.request_mode(m).await, Ok(ModeAction::Nothing), "{m}");
    }
    assert_conflict(de1.request_mode(Mode::SkipToNext).await);
    let before = requested_states(&c).len();
    assert_eq!(
        de1.request_mode(Mode::NoRequest).await,
        Ok(ModeAction::Request(S::NoRequest))
    );
    assert_eq!(requested_states(&c).len(), before + 1);

    assert_eq!(
        de1.request_mode(Mode::Sleep).await,
        Ok(ModeAction::Request(S::Sleep))
    );
    reach(de1, S::Sleep).await;
    assert_eq!(de1.request_mode(Mode::Sleep).await, Ok(ModeAction::Nothing));
    assert_eq!(de1.request_mode(Mode::Stop).await, Ok(ModeAction::Nothing));
    for m in [
        Mode::Espresso,
        Mode::Steam,
        Mode::Clean,
        Mode::Descale,
        Mode::Transport,
    ] {
        assert_conflict(de1.request_mode(m).await);
    }
    assert_eq!(
        de1.request_mode(Mode::Wake).await,
        Ok(ModeAction::Request(S::Idle))
    );
    reach(de1, S::Idle).await;
    // Refusals wrote nothing: the only RequestedState writes are NoRequest, Sleep, Idle.
    assert_eq!(requested_states(&c)[before..], [0x0D, 0x00, 0x02]);
}

#[tokio::test(start_paused = true)]
async fn skip_to_next_and_end_steam() {
    let (t, _ctl) = common::sim(|_| {});
    let c = common::connect(&t, common::options()).await;
    let de1 = &c.de1;
    de1.upload_profile(
        &common::profile("de1app__blooming_espresso"),
        ProfileOptions::default(),
    )
    .await
    .expect("profile");
    de1.request_mode(Mode::Espresso).await.expect("espresso");
    let s = common::wait_state(de1, T, |s| {
        s.state == S::Espresso && matches!(s.substate, Sub::PreInfuse | Sub::Pour)
    })
    .await
    .expect("flowing");
    let frame = || de1.with_mirror(|m| m.shot_sample.map(|s| s.value.frame_number));
    let before = frame();
    assert_eq!(
        de1.request_mode(Mode::SkipToNext).await,
        Ok(ModeAction::Request(S::SkipToNext)),
        "in {s:?}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(frame() > before, "frame {before:?} → {:?}", frame());
    de1.request_mode(Mode::Stop).await.expect("stop");
    reach_sub(de1, S::Idle, Sub::NoState).await;

    // Steam: EndSteam without purge mode writes a zero steam time and restores it.
    let original = de1
        .with_mirror(|m| m.shot_settings.map(|s| s.value))
        .expect("settings");
    de1.request_mode(Mode::Steam).await.expect("steam");
    reach_sub(de1, S::Steam, Sub::Pour).await;
    assert_eq!(
        de1.request_mode(Mode::EndSteam).await,
        Ok(ModeAction::EndSteamViaShotSettings)
    );
    reach(de1, S::Idle).await;
    assert_eq!(
        de1.with_mirror(|m| m.shot_settings.map(|s| s.value)),
        Some(original),
        "the steam time is restored"
    );
}

#[tokio::test(start_paused = true)]
async fn a_ghc_machine_refuses_app_started_flows_with_418() {
    let (t, ctl) = common::sim(|cfg| cfg.machine.ghc = Ghc::Active);
    let c = common::connect(&t, common::options()).await;
    let de1 = &c.de1;
    reach_sub(de1, S::Idle, Sub::NoState).await;
    let before = requested_states(&c).len();
    for m in [
        Mode::Espresso,
        Mode::Steam,
        Mode::HotWater,
        Mode::HotWaterRinse,
    ] {
        let e = de1.request_mode(m).await.expect_err("GHC");
        assert_eq!(e, De1Error::GhcActive(m));
        assert_eq!(e.kind(), CommandErrorKind::DeviceCannot);
    }
    assert_eq!(requested_states(&c).len(), before, "nothing written");
    // Started at the group head, the app may stop it.
    ctl.press_group_head(GroupHeadButton::HotWater)
        .expect("button");
    reach(de1, S::HotWater).await;
    assert_eq!(
        de1.request_mode(Mode::Stop).await,
        Ok(ModeAction::Request(S::Idle))
    );
    reach(de1, S::Idle).await;
    // Maintenance is not a flow: allowed.
    assert_eq!(
        de1.request_mode(Mode::Clean).await,
        Ok(ModeAction::Request(S::Clean))
    );
    reach(de1, S::Clean).await;
}

#[tokio::test(start_paused = true)]
async fn a_ghc_present_but_inactive_lets_the_app_start() {
    let (t, _ctl) = common::sim(|cfg| cfg.machine.ghc = Ghc::PresentInactive);
    let c = common::connect(&t, common::options()).await;
    reach_sub(&c.de1, S::Idle, Sub::NoState).await;
    assert_eq!(
        c.de1.request_mode(Mode::HotWater).await,
        Ok(ModeAction::Request(S::HotWater))
    );
    reach(&c.de1, S::HotWater).await;
}

#[tokio::test(start_paused = true)]
async fn refill_permits_sleep_but_not_stop() {
    let (t, ctl) = common::sim(|_| {});
    let c = common::connect(&t, common::options()).await;
    let de1 = &c.de1;
    reach_sub(de1, S::Idle, Sub::NoState).await;
    ctl.set_water_level(1.0);
    reach(de1, S::Refill).await;
    assert_conflict(de1.request_mode(Mode::Stop).await);
    assert_conflict(de1.request_mode(Mode::Espresso).await);
    assert_eq!(
        de1.request_mode(Mode::Sleep).await,
        Ok(ModeAction::Request(S::Sleep))
    );
    reach(de1, S::Sleep).await;
}
