//! The hostile-tar cases again with openat2 disabled, so the O_NOFOLLOW fallback walk is what keeps them in (as crun's no-openat2 CI leg).

mod layer_support;

evil_tests!({ strata::paths::disable_openat2() });
