from tests.conftest import PASSWORD


def test_viewer_signs_in_and_sees_granted_dashboards(client, dashboards_a, viewer_a):
    response = client.post("/accounts/login/", {"login": viewer_a.email, "password": PASSWORD})
    assert response.status_code == 302
    page = client.get("/dashboards/")
    assert page.status_code == 200
    assert b"Sales A" in page.content
    assert b"Board A" not in page.content
