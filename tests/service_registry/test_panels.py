"""Reference panels: CRUD, filters, and sync from the services themselves (never deleting a panel)."""

from tests.fakes.michigan import Panel
from tests.fakes.serve import serve_asgi
from tests.service_registry.conftest import MICHIGAN_TOKEN, create, events
from tests.service_registry.test_health import SAPPORO_SERVICE_INFO, wes_app

PANEL = {
    "panel_id": "h3africa-v6",
    "name": "H3Africa v6",
    "build": "hg38",
    "populations": ["AFR", "mixed"],
    "samples_count": 4447,
    "variants_count": 130000000,
}


async def test_panel_crud_and_filters(client, service_admin, researcher):
    service = await create(client, service_admin, name="H3Africa")
    other = await create(client, service_admin, name="Michigan")
    created = await client.post(f"/services/{service['id']}/panels", json=PANEL, headers=service_admin)
    assert created.status_code == 201
    panel = created.json()
    assert {k: panel[k] for k in ("service_id", "panel_id", "build", "populations", "is_active", "parameters")} == {
        "service_id": service["id"],
        "panel_id": "h3africa-v6",
        "build": "hg38",
        "populations": ["AFR", "mixed"],
        "is_active": True,
        "parameters": {},
    }
    await client.post(
        f"/services/{other['id']}/panels",
        json={"panel_id": "hapmap-2", "name": "HapMap 2", "build": "hg19", "populations": ["eur"]},
        headers=service_admin,
    )

    async def panel_ids(query: str) -> list[str]:
        response = await client.get(f"/reference-panels?{query}", headers=researcher)
        assert response.status_code == 200
        return [p["panel_id"] for p in response.json()["items"]]

    assert await panel_ids(f"service_id={service['id']}") == ["h3africa-v6"]
    assert await panel_ids("build=hg19") == ["hapmap-2"]
    assert await panel_ids("population=afr") == ["h3africa-v6"]
    assert await panel_ids("population=EUR") == ["hapmap-2"]
    assert await panel_ids("population=eu") == []
    by_service = (await client.get(f"/services/{service['slug']}/panels", headers=researcher)).json()
    assert (by_service["total"], by_service["items"][0]["id"]) == (1, panel["id"])

    duplicate = await client.post(f"/services/{service['id']}/panels", json=PANEL, headers=service_admin)
    assert duplicate.status_code == 409
    assert duplicate.json() == {
        "error": "duplicate_panel",
        "detail": "The service already has a panel with the id 'h3africa-v6'.",
    }
    assert (await client.post(f"/services/{service['id']}/panels", json=PANEL, headers=researcher)).status_code == 403
    bad_build = await client.post(
        f"/services/{service['id']}/panels", json={**PANEL, "panel_id": "x", "build": "hg17"}, headers=service_admin
    )
    assert bad_build.status_code == 422

    patched = await client.patch(
        f"/reference-panels/{panel['id']}",
        json={"parameters": {"reference_vcf": "/refs/h3a.vcf.gz", "genetic_map": "/maps/plink.GRCh38.map"}},
        headers=service_admin,
    )
    assert patched.json()["parameters"] == {
        "reference_vcf": "/refs/h3a.vcf.gz",
        "genetic_map": "/maps/plink.GRCh38.map",
    }
    assert (await client.delete(f"/reference-panels/{panel['id']}", headers=service_admin)).status_code == 204
    missing = await client.get(f"/reference-panels/{panel['id']}", headers=researcher)
    assert missing.status_code == 404
    assert missing.json() == {"error": "panel_not_found", "detail": f"There is no reference panel {panel['id']}."}


async def test_michigan_sync_adds_updates_and_deactivates_but_never_deletes(
    app, client, michigan, service_admin, researcher
):
    base_url, fake = michigan
    service = await create(client, service_admin, base_url=base_url, credential=MICHIGAN_TOKEN)
    first = await client.post(f"/services/{service['id']}/sync", headers=service_admin)
    assert first.status_code == 200
    assert first.json() == {
        "service_id": service["id"],
        "added": ["1000g-phase-3-v5", "hapmap-2", "hrc-r1.1", "topmed-r3"],
        "updated": [],
        "deactivated": [],
        "unchanged": [],
        "capabilities": {},
    }
    panels = (await client.get(f"/services/{service['id']}/panels", headers=researcher)).json()["items"]
    by_id = {p["panel_id"]: p for p in panels}
    assert by_id["hapmap-2"]["populations"] == ["eur"]
    assert by_id["hapmap-2"]["build"] == "hg19"
    assert by_id["topmed-r3"]["build"] == "hg38"
    assert by_id["hapmap-2"]["parameters"] == {
        "refpanel": "apps@hapmap-2@2.0.0",
        "version": "2.0.0",
        "app_id": "imputationserver2@2.0.12",
    }

    fake.panels = [
        Panel("1000g-phase-3-v5", "2.0.0", "1000 Genomes Phase 3 (Version 5)", {"afr": "AFR", "eur": "EUR"}),
        Panel("hapmap-2", "2.0.0", "HapMap 2", {"eur": "EUR"}),
        Panel("hrc-r1.1", "2.0.0", "HRC r1.1 2016", {"eur": "EUR", "mixed": "Mixed"}),
        Panel("h3africa-v6", "1.0.0", "H3Africa v6 (GRCh38/hg38)", {"afr": "AFR"}),
    ]
    second = (await client.post(f"/services/{service['id']}/sync", headers=service_admin)).json()
    assert (second["added"], second["updated"], second["deactivated"], second["unchanged"]) == (
        ["h3africa-v6"],
        ["1000g-phase-3-v5"],
        ["topmed-r3"],
        ["hapmap-2", "hrc-r1.1"],
    )
    panels = (await client.get(f"/services/{service['id']}/panels", headers=researcher)).json()
    assert panels["total"] == 5
    assert {p["panel_id"]: p["is_active"] for p in panels["items"]}["topmed-r3"] is False
    # The sync changed panels twice: each time Django and others are told.
    assert [e["action"] for e in await events(app, "service.changed")] == ["created", "updated", "updated"]


async def test_michigan_sync_without_a_token_says_why(client, michigan, service_admin):
    base_url, _ = michigan
    service = await create(client, service_admin, base_url=base_url)
    response = await client.post(f"/services/{service['id']}/sync", headers=service_admin)
    assert response.status_code == 502
    assert response.json() == {
        "error": "no_imputation_app",
        "detail": "The server lists no imputation app (is the service's API token set and valid?).",
    }


async def test_wes_sync_records_capabilities_and_gates_panels_on_them(client, service_admin, researcher):
    async with serve_asgi(wes_app(SAPPORO_SERVICE_INFO)) as base_url:
        service = await create(
            client, service_admin, name="ILIFU", api_type="ga4gh_wes", base_url=f"{base_url}/ga4gh/wes/v1"
        )
        for panel_id, parameters in [
            ("1kg-cwl", {"workflow_type": "CWL", "workflow_engine": "cwltool", "reference_vcf": "/refs/1kg.vcf.gz"}),
            ("1kg-nextflow", {"workflow_type": "NFL", "reference_vcf": "/refs/1kg.vcf.gz"}),
        ]:
            await client.post(
                f"/services/{service['id']}/panels",
                json={"panel_id": panel_id, "name": panel_id, "build": "hg38", "parameters": parameters},
                headers=service_admin,
            )
        result = (await client.post(f"/services/{service['id']}/sync", headers=service_admin)).json()
    assert result == {
        "service_id": service["id"],
        "added": [],
        "updated": [],
        "deactivated": ["1kg-nextflow"],
        "unchanged": ["1kg-cwl"],
        "capabilities": {
            "workflow_type_versions": {"CWL": ["v1.0", "v1.1", "v1.2"]},
            "workflow_engine_versions": {"cwltool": ["3.3.20260925135507"]},
            "supported_wes_versions": ["sapporo-wes-2.1.0"],
            "version": "2.4.0",
        },
    }
    panels = (await client.get(f"/services/{service['id']}/panels", headers=researcher)).json()
    assert panels["total"] == 2


async def test_sync_of_an_unreachable_service_is_502(client, service_admin):
    service = await create(client, service_admin, base_url="http://127.0.0.1:9")
    response = await client.post(f"/services/{service['id']}/sync", headers=service_admin)
    assert response.status_code == 502
    assert response.json()["detail"] == "The service could not be read: connection refused by 127.0.0.1:9."


async def test_health_and_sync_against_a_real_wes_server(client, service_admin, researcher, tmp_path):
    from tests.job_processor.sapporo_server import start_sapporo

    with start_sapporo(tmp_path) as sapporo:
        service = await create(client, service_admin, name="sapporo", api_type="ga4gh_wes", base_url=sapporo.base_url)
        await client.post(
            f"/services/{service['id']}/panels",
            json={"panel_id": "sim-1mb", "name": "sim", "build": "hg38", "parameters": {"workflow_type": "CWL"}},
            headers=service_admin,
        )
        health = (await client.get(f"/services/{service['id']}/health?refresh=true", headers=researcher)).json()
        result = (await client.post(f"/services/{service['id']}/sync", headers=service_admin)).json()
    assert (health["status"], health["error_message"]) == ("healthy", None)
    assert result["unchanged"] == ["sim-1mb"]
    assert result["deactivated"] == []
    assert "CWL" in result["capabilities"]["workflow_type_versions"]
    assert "cwltool" in result["capabilities"]["workflow_engine_versions"]
