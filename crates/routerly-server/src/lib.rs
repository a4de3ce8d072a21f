//! routerly-server
