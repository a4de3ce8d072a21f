//! routerly-providers
