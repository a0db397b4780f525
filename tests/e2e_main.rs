//! End-to-end tests: the real `de1d` executable, run as a user runs it on the simulated
//! DE1 and scale, driven over HTTP and watched over MQTT.
//!
//! Every test starts its own de1d with its own runtime directory, log file, HTTP port
//! and mosquitto, so the tests run in parallel. A simulated shot takes about 30 s of
//! real time. They need `/usr/sbin/mosquitto` (`scripts/setup.sh` installs it).

mod support;

mod e2e_bad_input;
mod e2e_crash;
mod e2e_first_shot;
mod e2e_modes;
mod e2e_mqtt_compat;
mod e2e_signals;
