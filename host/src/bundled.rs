//! The connectors that ship inside the `switchboard` binary: the webhook,
//! HubSpot, ActiveCampaign, Intercom and Slack components, built by
//! `build.rs` from `connectors/` and embedded here, so `serve` offers them
//! with no configuration. They register before `connectors_dir`, under
//! [`Origin::Bundled`](crate::registry::Origin::Bundled); a file there with
//! the same name and version is not registered (a newer version is).

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

#[cfg(test)]
mod tests {
    use super::CONNECTORS;

    #[test]
    fn every_connector_crate_in_the_workspace_is_bundled() {
        let connectors = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors");
        let mut crates: Vec<String> = std::fs::read_dir(&connectors)
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("Cargo.toml").is_file())
            .map(|e| format!("switchboard-connector-{}", e.file_name().to_string_lossy()))
            .collect();
        crates.sort();
        let mut bundled: Vec<String> = CONNECTORS.iter().map(|(package, _)| package.to_string()).collect();
        bundled.sort();
        assert_eq!(bundled, crates);
    }

    #[test]
    fn the_embedded_bytes_are_components() {
        for (package, bytes) in CONNECTORS {
            // The component-model preamble: magic, then layer 1.
            assert_eq!(&bytes[..4], b"\0asm", "{package}");
            assert_eq!(&bytes[6..8], [1, 0], "{package} is a component, not a core module");
        }
    }
}
