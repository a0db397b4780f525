//! The effective configuration: file, environment, then command-line options.

use std::path::PathBuf;
use std::process::ExitCode;

use ipc_schema::config::{Config, ConfigError, DEFAULT_CONFIG_PATH, ENV_PREFIX};

use crate::cli::ConfigArgs;
use crate::EXIT_CONFIG;

/// Loads the configuration named by (or implied by) `args`, applies the environment
/// overrides and then the options.
pub fn effective_config(args: &ConfigArgs) -> Result<Config, ConfigError> {
    let (path, required) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let mut config = Config::load(Some((&path, required)), env_vars()?)?;
    apply_args(&mut config, args);
    config.validate()?;
    check_patch_on_connect(&config)?;
    Ok(config)
}

/// `[de1] patch_on_connect` must be a valid `PATCH /de1` body: checked here, at start,
/// rather than each time the DE1 connects. The error names the offending key, e.g.
/// `de1.patch_on_connect.setting.steam.temperature`.
pub fn check_patch_on_connect(config: &Config) -> Result<(), ConfigError> {
    let Some(table) = &config.de1.patch_on_connect else {
        return Ok(());
    };
    pyde1_docs::patch::de1_changes(table)
        .map(|_| ())
        .map_err(|e| {
            let key = match e.path.as_str() {
                "body" | "" => "de1.patch_on_connect".to_owned(),
                path => format!("de1.patch_on_connect.{}", path.replace(':', ".")),
            };
            ConfigError::Invalid {
                key,
                message: e.message,
            }
        })
}

/// Applies command-line options to a configuration.
pub fn apply_args(config: &mut Config, args: &ConfigArgs) {
    if args.simulate {
        config.bluetooth.simulate = true;
    }
    if let Some(p) = args.http_port {
        config.http.port = p;
    }
    if let Some(p) = args.mqtt_port {
        config.mqtt.broker_port = p;
    }
    if args.spawn_broker {
        config.mqtt.spawn_broker = true;
    }
    if let Some(f) = &args.log_file {
        config.logging.file = f.clone();
    }
    if let Some(l) = args.log_level {
        config.logging.level = l;
    }
    if let Some(d) = &args.runtime_dir {
        config.launcher.runtime_dir = Some(d.clone());
    }
}

/// The process environment; a `DE1D_` variable that is not valid UTF-8 is an error.
fn env_vars() -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (k, v) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        if !k.starts_with(ENV_PREFIX) {
            continue;
        }
        match v.into_string() {
            Ok(v) => out.push((k.to_owned(), v)),
            Err(_) => {
                return Err(ConfigError::Env {
                    var: k.to_owned(),
                    message: "value is not valid UTF-8".into(),
                })
            }
        }
    }
    Ok(out)
}

/// Prints a configuration error and returns the exit status for it.
pub fn report_config_error(e: &ConfigError) -> ExitCode {
    eprintln!("de1d: configuration error: {e}");
    ExitCode::from(EXIT_CONFIG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_schema::config::LevelFilter;

    #[test]
    fn options_override_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[http]\nport = 1\n[logging]\nlevel = \"warn\"\n").expect("write");
        let args = ConfigArgs {
            config: Some(p),
            simulate: true,
            http_port: Some(8080),
            mqtt_port: Some(1999),
            log_file: Some("/dev/null".into()),
            log_level: Some(LevelFilter::Trace),
            ..ConfigArgs::default()
        };
        let c = effective_config(&args).expect("valid");
        assert_eq!(c.http.port, 8080);
        assert_eq!(c.mqtt.broker_port, 1999);
        assert!(c.bluetooth.simulate);
        assert_eq!(c.logging.level, LevelFilter::Trace);
        assert_eq!(c.logging.file, PathBuf::from("/dev/null"));
    }

    #[test]
    fn patch_on_connect_is_checked_at_start_and_names_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        let args = ConfigArgs {
            config: Some(p.clone()),
            ..ConfigArgs::default()
        };
        std::fs::write(
            &p,
            "[de1.patch_on_connect.setting.steam]\ntemperature = 200\n",
        )
        .expect("write");
        let msg = effective_config(&args).expect_err("200 °C").to_string();
        assert!(
            msg.contains("de1.patch_on_connect.setting.steam.temperature"),
            "{msg}"
        );
        std::fs::write(
            &p,
            "[de1.patch_on_connect.control.espresso]\nstop_at_wieght = 3\n",
        )
        .expect("write");
        let msg = effective_config(&args).expect_err("typo").to_string();
        assert!(
            msg.contains("de1.patch_on_connect.control.espresso.stop_at_wieght"),
            "{msg}"
        );
        std::fs::write(
            &p,
            "[de1.patch_on_connect.control.espresso]\nstop_at_weight = 36.5\n\
             [de1.patch_on_connect.setting.fan_threshold]\ntemperature = 45\n",
        )
        .expect("write");
        let c = effective_config(&args).expect("valid patch");
        assert!(c.de1.patch_on_connect.is_some());
    }

    #[test]
    fn an_invalid_option_value_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "").expect("write");
        let args = ConfigArgs {
            config: Some(p),
            http_port: Some(0),
            ..ConfigArgs::default()
        };
        let msg = effective_config(&args).expect_err("port 0").to_string();
        assert!(msg.contains("http.port"), "{msg}");
    }
}
