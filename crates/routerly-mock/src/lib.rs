//! routerly-mock
