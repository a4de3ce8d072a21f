//! `/dashboard`: the embedded app (or, in a build without `dashboard/dist`, the page saying
//! how to build it) for every client-side route, 404 for missing files, and off when the
//! `dashboard` setting is false.

use crate::common;

use common::Gateway;

#[tokio::test]
async fn every_client_side_route_gets_the_app_page() {
    let gateway = Gateway::start(Vec::new()).await;
    for path in [
        "/dashboard",
        "/dashboard/",
        "/dashboard/projects/p1/routing",
        "/dashboard/settings/users",
    ] {
        let response = gateway.get(path).send().await.expect("the service answers");
        assert_eq!(response.status(), 200, "GET {path}");
        let content_type = response.headers()[http::header::CONTENT_TYPE].clone();
        assert_eq!(content_type, "text/html; charset=utf-8", "GET {path}");
        assert!(
            response
                .headers()
                .contains_key(http::header::CONTENT_SECURITY_POLICY),
            "GET {path} carries a content security policy"
        );
        let body = response.text().await.expect("a body");
        assert!(
            body.contains("<html"),
            "GET {path} answers an HTML page: {body}"
        );
    }
    gateway.stop().await;
}

#[tokio::test]
async fn a_missing_file_is_a_404_not_the_app() {
    let gateway = Gateway::start(Vec::new()).await;
    let response = gateway
        .get("/dashboard/assets/index-missing.js")
        .send()
        .await
        .expect("the service answers");
    assert_eq!(response.status(), 404);
    gateway.stop().await;
}

#[tokio::test]
async fn the_root_redirects_to_the_dashboard() {
    let gateway = Gateway::start(Vec::new()).await;
    let response = gateway.get("/").send().await.expect("the service answers");
    assert_eq!(
        response.url().path(),
        "/dashboard",
        "the redirect was followed"
    );
    assert_eq!(response.status(), 200);
    gateway.stop().await;
}

#[tokio::test]
async fn the_dashboard_setting_turns_it_off() {
    let gateway = Gateway::start_with(Vec::new(), |draft| draft.settings.dashboard = false).await;
    for path in ["/dashboard", "/dashboard/projects"] {
        let response = gateway.get(path).send().await.expect("the service answers");
        assert_eq!(response.status(), 404, "GET {path} with the dashboard off");
    }
    gateway.stop().await;
}
