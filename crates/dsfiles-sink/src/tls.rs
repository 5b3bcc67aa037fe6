//! The TLS crypto provider of the process: rustls with `ring`.
//!
//! The workspace builds reqwest (and so object_store's HTTP client) with
//! `rustls-no-provider`, because the provider reqwest would otherwise bundle, aws-lc-rs,
//! costs more C compilation than everything else in a fresh build. reqwest then takes the
//! process-wide default provider when a client is built and panics if there is none, so
//! every place that builds an HTTPS client calls [`install_crypto_provider`] first (the DS
//! client, the file fetcher, the object-store sinks, the CLI's healthcheck). The call is
//! idempotent, and it keeps whatever provider a program embedding dsfiles installed before.

/// Makes `ring` rustls's process default provider unless one is installed already.
pub fn install_crypto_provider() {
    // `Err` means a provider is already installed: the embedding program chose, keep it.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_can_be_built_after_installing() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        assert!(reqwest::Client::builder().build().is_ok());
    }
}
