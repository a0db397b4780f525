//! The route table: every path de1d serves, what each method does there, and the mapping
//! that describes its documents. The HTTP router and the OpenAPI document are both built
//! from [`ROUTES`], so neither can list a route the other lacks.

use axum::http::Method;
use ipc_schema::command::Resource;

use crate::error::ApiError;
use crate::mapping::{self, Node};

/// What GET does.
#[derive(Debug, Clone, Copy)]
pub enum Get {
    /// Not permitted (405).
    No,
    /// Permitted by pyDE1 but not implemented (501).
    NotImplemented,
    /// Asks the controller; the document is described by the node.
    Controller(Resource, &'static Node),
    /// An empty document answered locally (pyDE1's placeholders).
    Empty,
    /// The `version` document.
    Version,
    /// The list of log files.
    Logs,
    /// One log file.
    Log,
    /// The OpenAPI document.
    OpenApi,
}

/// What PATCH does.
#[derive(Debug, Clone, Copy)]
pub enum Patch {
    No,
    NotImplemented,
    /// Validated against the node, then sent to the controller.
    Controller(Resource, &'static Node),
    /// Validated against the node and answered locally (nothing to change).
    Local(&'static Node),
}

/// What PUT does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    No,
    NotImplemented,
    /// Raw JSON v2 profile: upload to the DE1.
    Profile,
    /// Raw JSON v2 profile: store only.
    ProfileStore,
    /// `{"id": …}`: select a stored profile.
    ProfileId,
    /// Raw firmware image.
    Firmware,
    /// Any non-empty body: cancel the firmware upload.
    FirmwareCancel,
    /// Raw role name: start a scan.
    Scan,
}

/// One path.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// Without the server root; `{id}` marks the one parameter.
    pub path: &'static str,
    pub get: Get,
    pub patch: Patch,
    pub put: Put,
    pub summary: &'static str,
}

impl Route {
    /// The methods that work here, for the `Allow` header.
    pub fn allow(&self) -> String {
        let mut m = Vec::new();
        if !matches!(self.get, Get::No | Get::NotImplemented) {
            m.push("GET");
        }
        if !matches!(self.patch, Patch::No | Patch::NotImplemented) {
            m.push("PATCH");
        }
        if !matches!(self.put, Put::No | Put::NotImplemented) {
            m.push("PUT");
        }
        m.join(", ")
    }

    /// The action for a method, or the 405/501 error.
    pub fn action(&self, method: &Method) -> Result<Action, ApiError> {
        let refuse = || ApiError::method_not_allowed(method.as_str(), self.path, self.allow());
        let unimplemented = || {
            ApiError::not_implemented(
                format!("{method} is not implemented for {}", self.path),
                self.allow(),
            )
        };
        if *method == Method::GET {
            match self.get {
                Get::No => Err(refuse()),
                Get::NotImplemented => Err(unimplemented()),
                g => Ok(Action::Get(g)),
            }
        } else if *method == Method::PATCH {
            match self.patch {
                Patch::No => Err(refuse()),
                Patch::NotImplemented => Err(unimplemented()),
                p => Ok(Action::Patch(p)),
            }
        } else if *method == Method::PUT {
            match self.put {
                Put::No => Err(refuse()),
                Put::NotImplemented => Err(unimplemented()),
                p => Ok(Action::Put(p)),
            }
        } else {
            // pyDE1 answers every other method with 501 "Unsupported method".
            Err(ApiError::not_implemented(
                format!("{method} is not supported; use GET, PATCH or PUT"),
                self.allow(),
            ))
        }
    }
}

/// What to do for a request.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Get(Get),
    Patch(Patch),
    Put(Put),
}

const fn r(path: &'static str, get: Get, patch: Patch, put: Put, summary: &'static str) -> Route {
    Route {
        path,
        get,
        patch,
        put,
        summary,
    }
}

/// A resource the controller reads and writes, that pyDE1 answers PUT with 501.
const fn rw(
    path: &'static str,
    res: Resource,
    node: &'static Node,
    summary: &'static str,
) -> Route {
    r(
        path,
        Get::Controller(res, node),
        Patch::Controller(res, node),
        Put::NotImplemented,
        summary,
    )
}

/// A read-only resource of the controller.
const fn ro(
    path: &'static str,
    res: Resource,
    node: &'static Node,
    summary: &'static str,
) -> Route {
    r(
        path,
        Get::Controller(res, node),
        Patch::No,
        Put::No,
        summary,
    )
}

/// A write-only resource of the controller.
const fn wo(
    path: &'static str,
    res: Resource,
    node: &'static Node,
    summary: &'static str,
) -> Route {
    r(
        path,
        Get::No,
        Patch::Controller(res, node),
        Put::NotImplemented,
        summary,
    )
}

/// pyDE1's empty placeholders.
const fn empty(path: &'static str, node: &'static Node, summary: &'static str) -> Route {
    r(
        path,
        Get::Empty,
        Patch::Local(node),
        Put::NotImplemented,
        summary,
    )
}

/// Declared by pyDE1, no method permitted.
const fn none(path: &'static str, summary: &'static str) -> Route {
    r(path, Get::No, Patch::No, Put::No, summary)
}

use mapping as m;
use Resource as R;

/// Every route.
pub static ROUTES: &[Route] = &[
    r(
        "version",
        Get::Version,
        Patch::No,
        Put::No,
        "de1d and API versions",
    ),
    r(
        "openapi.json",
        Get::OpenApi,
        Patch::No,
        Put::No,
        "this API described in OpenAPI 3.0",
    ),
    r(
        "logs",
        Get::Logs,
        Patch::No,
        Put::No,
        "the files in the log directory",
    ),
    r(
        "log/{id}",
        Get::Log,
        Patch::No,
        Put::No,
        "one file of the log directory",
    ),
    r(
        "scan",
        Get::No,
        Patch::No,
        Put::Scan,
        "start a Bluetooth scan for a device role (plain-text body)",
    ),
    r(
        "scan/devices",
        Get::NotImplemented,
        Patch::No,
        Put::No,
        "removed in pyDE1 2.0: scan results are published on MQTT (ScanResults)",
    ),
    rw(
        "de1",
        R::De1,
        &m::DE1,
        "the DE1: every document below in one",
    ),
    rw(
        "de1/id",
        R::De1Id,
        &m::DE1_ID,
        "which DE1: address and name; PATCH to select one",
    ),
    wo(
        "de1/mode",
        R::De1Mode,
        &m::DE1_MODE,
        "change the DE1's mode (Sleep, Espresso, Stop …)",
    ),
    ro(
        "de1/state",
        R::De1State,
        &m::DE1_STATE,
        "the DE1's state and substate",
    ),
    r(
        "de1/feature_flags",
        Get::Controller(R::De1FeatureFlags, &m::DE1_FEATURE_FLAGS),
        Patch::Controller(R::De1FeatureFlags, &m::DE1_FEATURE_FLAGS),
        Put::NotImplemented,
        "what the connected firmware offers (read-only)",
    ),
    r(
        "de1/profile",
        Get::No,
        Patch::No,
        Put::Profile,
        "upload a JSON v2 profile to the DE1",
    ),
    r(
        "de1/profile/id",
        Get::Controller(R::De1ProfileId, &m::DE1_PROFILE_ID),
        Patch::No,
        Put::ProfileId,
        "the current profile; PUT {\"id\": …} to upload a stored one",
    ),
    r(
        "de1/profile/store",
        Get::No,
        Patch::No,
        Put::ProfileStore,
        "store a JSON v2 profile without uploading it",
    ),
    none("de1/profiles", "declared by pyDE1, not implemented"),
    r(
        "de1/firmware",
        Get::Controller(R::De1Firmware, &m::DE1_FIRMWARE),
        Patch::No,
        Put::Firmware,
        "PUT a firmware image to start an upload; GET its progress",
    ),
    r(
        "de1/firmware/cancel",
        Get::No,
        Patch::No,
        Put::FirmwareCancel,
        "cancel the running firmware upload (any non-empty body)",
    ),
    r(
        "de1/firmware/id",
        Get::Controller(R::De1FirmwareId, &m::DE1_FIRMWARE_ID),
        Patch::No,
        Put::NotImplemented,
        "the firmware build number",
    ),
    none("de1/firmwares", "declared by pyDE1, not implemented"),
    rw(
        "de1/availability",
        R::De1Availability,
        &m::DE1_AVAILABILITY,
        "capture (C) or release (R) the DE1",
    ),
    rw(
        "de1/connectivity",
        R::De1Connectivity,
        &m::DE1_CONNECTIVITY,
        "connect or disconnect the DE1 and wait (older form of availability)",
    ),
    rw(
        "de1/control",
        R::De1Control,
        &m::DE1_CONTROL,
        "per-mode controls",
    ),
    rw(
        "de1/control/espresso",
        R::De1ControlEspresso,
        &m::CONTROL_ESPRESSO,
        "espresso stop-at and sequencer controls",
    ),
    rw(
        "de1/control/steam",
        R::De1ControlSteam,
        &m::CONTROL_STEAM,
        "steam controls",
    ),
    rw(
        "de1/control/hot_water",
        R::De1ControlHotWater,
        &m::CONTROL_HOT_WATER,
        "hot-water controls",
    ),
    rw(
        "de1/control/hot_water_rinse",
        R::De1ControlHotWaterRinse,
        &m::CONTROL_HOT_WATER_RINSE,
        "hot-water rinse (flush) controls",
    ),
    rw(
        "de1/control/tank_water_threshold",
        R::De1ControlTankWaterThreshold,
        &m::CONTROL_TANK_WATER_THRESHOLD,
        "tank pre-heat threshold",
    ),
    rw(
        "de1/setting",
        R::De1Setting,
        &m::DE1_SETTING,
        "machine settings",
    ),
    rw(
        "de1/setting/auto_off_time",
        R::De1SettingAutoOffTime,
        &m::SETTING_AUTO_OFF_TIME,
        "sleep after this long without a state change",
    ),
    rw(
        "de1/setting/fan_threshold",
        R::De1SettingFanThreshold,
        &m::SETTING_FAN_THRESHOLD,
        "fan threshold temperature",
    ),
    rw(
        "de1/setting/start_fill_level",
        R::De1SettingStartFillLevel,
        &m::SETTING_START_FILL_LEVEL,
        "tank refill level",
    ),
    rw(
        "de1/setting/before_flow",
        R::De1SettingBeforeFlow,
        &m::SETTING_BEFORE_FLOW,
        "heater warm-up settings",
    ),
    rw(
        "de1/setting/target_group_temp",
        R::De1SettingTargetGroupTemp,
        &m::SETTING_TARGET_GROUP_TEMP,
        "group temperature",
    ),
    rw(
        "de1/setting/usb_outlet",
        R::De1SettingUsbOutlet,
        &m::SETTING_USB_OUTLET,
        "tablet USB charging outlet",
    ),
    rw(
        "de1/setting/refill_kit",
        R::De1SettingRefillKit,
        &m::SETTING_REFILL_KIT,
        "refill kit presence",
    ),
    rw(
        "de1/setting/steam",
        R::De1SettingSteam,
        &m::SETTING_STEAM,
        "steam settings",
    ),
    rw(
        "de1/setting/time",
        R::De1SettingTime,
        &m::SETTING_TIME,
        "the DE1's clock",
    ),
    none(
        "de1/setting/tbd_name_other_shot_settings",
        "hidden by pyDE1, no method permitted",
    ),
    rw(
        "de1/calibration",
        R::De1Calibration,
        &m::DE1_CALIBRATION,
        "calibration",
    ),
    rw(
        "de1/calibration/line_frequency",
        R::De1CalibrationLineFrequency,
        &m::CALIBRATION_LINE_FREQUENCY,
        "mains frequency used for volume integration",
    ),
    rw(
        "de1/calibration/flow_multiplier",
        R::De1CalibrationFlowMultiplier,
        &m::CALIBRATION_FLOW_MULTIPLIER,
        "flow-estimate calibration",
    ),
    r(
        "de1/calibration/internal",
        Get::NotImplemented,
        Patch::NotImplemented,
        Put::NotImplemented,
        "declared by pyDE1, not implemented",
    ),
    empty("de1/parameters", &m::EMPTY, "empty placeholder"),
    ro(
        "de1/read_once_values",
        R::De1ReadOnceValues,
        &m::DE1_READ_ONCE,
        "values read once after connecting",
    ),
    rw(
        "de1/presence",
        R::De1Presence,
        &m::DE1_PRESENCE,
        "user presence",
    ),
    rw(
        "scale",
        R::Scale,
        &m::SCALE,
        "the scale: every document below in one",
    ),
    rw(
        "scale/id",
        R::ScaleId,
        &m::SCALE_ID,
        "which scale: address and name; PATCH to select one",
    ),
    wo("scale/tare", R::ScaleTare, &m::SCALE_TARE, "tare the scale"),
    wo(
        "scale/display",
        R::ScaleDisplay,
        &m::SCALE_DISPLAY,
        "scale display on or off",
    ),
    rw(
        "scale/availability",
        R::ScaleAvailability,
        &m::SCALE_AVAILABILITY,
        "capture (C) or release (R) the scale",
    ),
    rw(
        "scale/connectivity",
        R::ScaleConnectivity,
        &m::SCALE_CONNECTIVITY,
        "connect or disconnect the scale and wait (older form of availability)",
    ),
    empty("flow_sequencer", &m::FLOW_SEQUENCER, "empty placeholder"),
    empty("flow_sequencer/settings", &m::EMPTY, "empty placeholder"),
    empty(
        "flow_sequencer/parameter_set",
        &m::EMPTY,
        "empty placeholder",
    ),
    rw(
        "thermometer",
        R::Thermometer,
        &m::THERMOMETER,
        "the thermometer: every document below in one",
    ),
    rw(
        "thermometer/id",
        R::ThermometerId,
        &m::THERMOMETER_ID,
        "which thermometer: address and name; PATCH to select one",
    ),
    rw(
        "thermometer/availability",
        R::ThermometerAvailability,
        &m::THERMOMETER_AVAILABILITY,
        "capture (C) or release (R) the thermometer",
    ),
];

/// The route of a path (without the root), `log/{id}` matching any `log/<name>`.
pub fn find(path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.path == path).or_else(|| {
        path.strip_prefix("log/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .and_then(|_| ROUTES.iter().find(|r| r.path == "log/{id}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique_and_every_controller_resource_has_a_route() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(seen.insert(r.path), "duplicate {}", r.path);
        }
        for res in Resource::ALL {
            let route = ROUTES
                .iter()
                .find(|r| r.path == res.path())
                .unwrap_or_else(|| panic!("no route for {res}"));
            let served = matches!(route.get, Get::Controller(x, _) if x == res)
                || matches!(route.patch, Patch::Controller(x, _) if x == res);
            assert!(served, "{res} not sent to the controller");
            assert_eq!(
                matches!(route.get, Get::Controller(..)),
                res.document_kind().is_some(),
                "{res}: GET and document kind disagree"
            );
        }
    }

    #[test]
    fn methods_resolve_as_pyde1_answers_them() {
        let mode = find("de1/mode").expect("route");
        let e = mode.action(&Method::GET).expect_err("405");
        assert_eq!(e.status.as_u16(), 405);
        assert_eq!(e.allow.as_deref(), Some("PATCH"));
        let e = find("de1/control/espresso")
            .expect("route")
            .action(&Method::PUT)
            .expect_err("501");
        assert_eq!(e.status.as_u16(), 501);
        let e = find("de1")
            .expect("route")
            .action(&Method::POST)
            .expect_err("501");
        assert_eq!(e.status.as_u16(), 501);
        assert_eq!(e.allow.as_deref(), Some("GET, PATCH"));
        assert!(find("de1/profile")
            .expect("route")
            .action(&Method::PUT)
            .is_ok());
        assert!(find("log/pyde1.log").is_some());
        assert!(find("log/").is_none());
        assert!(find("de1/").is_none());
        assert!(find("no/such/resource").is_none());
    }
}
