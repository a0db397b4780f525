//! The Skale II driver over the `ble` traits, against the simulated scale.

use std::time::Duration;

use ble::Address;
use controller::scale::{recognise, Scale, ScaleError, ScaleEvent, ScaleModel};
use de1_sim::{SimConfig, DE1_ADDRESS, SKALE_ADDRESS};
use futures::StreamExt;
use scale_protocol::skale2::Command;

#[tokio::test(start_paused = true)]
async fn connects_reports_and_obeys_commands() {
    let (transport, control) = de1_sim::simulator(SimConfig::default());
    let found = ble::scan_collect(&transport, Duration::from_secs(2))
        .await
        .expect("scan");
    let adv = found
        .iter()
        .find(|a| a.name.as_deref().and_then(recognise).is_some())
        .expect("the Skale advertises");
    assert_eq!(adv.address, Address::new(SKALE_ADDRESS));

    let (scale, mut events) = Scale::connect(&transport, &adv.address)
        .await
        .expect("connect");
    assert_eq!(scale.model(), ScaleModel::SkaleII);
    assert_eq!(scale.display_name(), "AtomaxSkaleII: Skale");
    assert_eq!(scale.sensor_lag(), Duration::from_millis(380));
    let s = control.snapshot().scale.expect("scale");
    assert!(
        s.display_on && s.grams,
        "set-up switched the display on, grams"
    );

    // Weights arrive about every 100 ms, stamped on arrival.
    let mut arrivals = Vec::new();
    while arrivals.len() < 10 {
        match events.next().await.expect("reports") {
            ScaleEvent::Weight(w) => arrivals.push(w.arrival),
            ScaleEvent::Button { .. } => {}
        }
    }
    let span = arrivals[9] - arrivals[0];
    assert!(span > Duration::from_millis(700) && span < Duration::from_millis(1200));

    scale.set_display(false).await.expect("display off");
    assert!(!control.snapshot().scale.unwrap().display_on);
    scale.set_display(true).await.expect("display on");
    assert!(control.snapshot().scale.unwrap().display_on);
    scale.tare().await.expect("tare");
    assert_eq!(control.snapshot().scale.unwrap().tares, 1);
    scale
        .skale2_command(Command::TimerStart)
        .await
        .expect("timer");
    assert!(control.snapshot().scale.unwrap().timer.running);

    control.press_scale_button(2).expect("scale");
    let button = loop {
        if let ScaleEvent::Button { button, .. } = events.next().await.expect("events") {
            break button;
        }
    };
    assert_eq!(button, 2);

    // The stream ends when the link goes.
    scale.disconnect().await.expect("disconnect");
    let rest = tokio::time::timeout(Duration::from_secs(5), events.collect::<Vec<_>>()).await;
    assert!(rest.is_ok(), "the event stream ended");
}

#[tokio::test(start_paused = true)]
async fn a_device_that_is_not_a_scale_is_refused() {
    let (transport, _control) = de1_sim::simulator(SimConfig::default());
    let result = Scale::connect(&transport, &Address::new(DE1_ADDRESS)).await;
    match result {
        Err(e) => assert_eq!(e, ScaleError::Unsupported(Some("DE1".to_string()))),
        Ok(_) => panic!("the DE1 is not a scale"),
    }
}
