//! Many hands on one account at once, property-style: for several seeds a
//! random number of concurrent requests — code guesses, wrong passwords, uses
//! of one reset token, contact changes, staff unlocks — and the exact outcome
//! each must have: attempt counters that count every request once, one
//! success per token, no update lost. A failure names its seed.

use crate::helpers::TestApp;
use crate::on_both_backends;
use crate::staff::{call, patient_id_of, staff, verification};
use carekey_domain::model::StaffRole;
use futures::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeSet;

on_both_backends!(
    concurrent_code_guesses_use_exactly_the_five_attempts,
    concurrent_wrong_passwords_are_each_counted_once,
    one_reset_token_raced_by_many_succeeds_once,
    concurrent_contact_changes_lose_no_update,
    concurrent_unlocks_and_sign_ins_agree,
);

const SEEDS: [u64; 3] = [7, 1_234, 98_765];

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let response = app.post_json(path, body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn concurrent_code_guesses_use_exactly_the_five_attempts(app: TestApp) {
    for seed in SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let username = format!("guess{seed}");
        app.patient(&username, "Guess").await;
        let (_, flow) = post(
            &app,
            "/api/v1/recovery",
            json!({ "purpose": "password", "channel": "email", "username": username }),
        )
        .await;
        let flow = flow["flow_id"].as_str().unwrap().to_owned();
        let right = app.messages(1).await[0].data.code.clone().unwrap();
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        let guesses = rng.gen_range(6..=16);
        let path = format!("/api/v1/recovery/{flow}/verify");
        let answers =
            join_all((0..guesses).map(|_| post(&app, &path, json!({ "code": wrong })))).await;
        let left: BTreeSet<i64> = answers
            .iter()
            .filter(|(status, _)| *status == 400)
            .map(|(_, body)| body["attempts_left"].as_i64().unwrap())
            .collect();
        let refused = answers.iter().filter(|(status, _)| *status == 400).count();
        assert_eq!(refused, 5, "seed {seed}, {guesses} guesses: {answers:?}");
        assert_eq!(left, BTreeSet::from([0, 1, 2, 3, 4]), "seed {seed}");
        assert!(
            answers.iter().all(|(s, _)| *s == 400 || *s == 410),
            "seed {seed}: {answers:?}"
        );
        let (status, _) = post(&app, &path, json!({ "code": right })).await;
        assert_eq!(
            status, 410,
            "seed {seed}: the right code after five wrong ones"
        );
    }
}

async fn concurrent_wrong_passwords_are_each_counted_once(app: TestApp) {
    for seed in SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let username = format!("wrong{seed}");
        app.patient(&username, "Wrong").await;
        let locks_before = app
            .services
            .store
            .count_audit("account.locked")
            .await
            .unwrap();
        // Below the lockout threshold the count is exact...
        let few = rng.gen_range(1..=4);
        join_all((0..few).map(|_| app.sign_in(&username, "not the password"))).await;
        let counted = app
            .count(&format!(
                "SELECT failed_attempts FROM portal_accounts WHERE username = '{username}'"
            ))
            .await;
        assert_eq!(counted, few, "seed {seed}");
        // ...and past it the account locks exactly once, whatever the number.
        let many = rng.gen_range(5..=15);
        join_all((0..many).map(|_| app.sign_in(&username, "not the password"))).await;
        let locks = app
            .services
            .store
            .count_audit("account.locked")
            .await
            .unwrap();
        assert_eq!(locks - locks_before, 1, "seed {seed}: {many} more failures");
        let notices = app
            .count(&format!(
                "SELECT COUNT(*) FROM outbox_messages m JOIN portal_accounts a \
                 ON a.patient_id = m.patient_id WHERE a.username = '{username}' \
                 AND m.kind = 'account_locked'"
            ))
            .await;
        assert_eq!(
            notices, 1,
            "seed {seed}: one lock notice per lock and contact"
        );
    }
}

async fn one_reset_token_raced_by_many_succeeds_once(app: TestApp) {
    use carekey_domain::audit::Actor;
    for seed in SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let username = format!("race{seed}");
        let account = app.patient(&username, "Race").await;
        let (code, _) = app
            .services
            .issue_staff_code(account, Actor::System, json!({}))
            .await
            .unwrap();
        let (_, redeemed) = post(
            &app,
            "/api/v1/recovery/staff-code",
            json!({ "code": code, "date_of_birth": crate::helpers::BIRTH_DATE }),
        )
        .await;
        let token = redeemed["accounts"][0]["reset_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let resets_before = app
            .services
            .store
            .count_audit("password.reset")
            .await
            .unwrap();
        let hands = rng.gen_range(2..=24);
        let answers = join_all((0..hands).map(|i| {
            let password = format!("racing lantern number {i} of many");
            let body = json!({ "token": token, "new_password": password,
                               "new_password_confirm": password });
            let app = &app;
            async move { (i, post(app, "/api/v1/password/reset", body).await.0) }
        }))
        .await;
        let winners: Vec<_> = answers.iter().filter(|(_, s)| *s == 200).collect();
        assert_eq!(winners.len(), 1, "seed {seed}, {hands} hands: {answers:?}");
        assert!(
            answers.iter().all(|(_, s)| *s == 200 || *s == 410),
            "{answers:?}"
        );
        let resets = app
            .services
            .store
            .count_audit("password.reset")
            .await
            .unwrap();
        assert_eq!(resets - resets_before, 1, "seed {seed}");
        // The winner's password is the one that works.
        let winner = winners[0].0;
        let signed_in = app
            .sign_in(
                &username,
                &format!("racing lantern number {winner} of many"),
            )
            .await;
        assert_eq!(signed_in.status(), 200, "seed {seed}");
    }
}

async fn concurrent_contact_changes_lose_no_update(app: TestApp) {
    let desk = staff(&app, "clerk", StaffRole::FrontDesk).await;
    for seed in SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let username = format!("moving{seed}");
        let first = format!("{username}@example.com");
        app.patient(&username, "Moving").await;
        let id = patient_id_of(&app, &desk, &format!("MRN-{username}")).await;
        let changes = rng.gen_range(2..=10);
        let addresses: Vec<String> = (0..changes)
            .map(|i| format!("{username}.{i}@example.org"))
            .collect();
        let path = format!("/api/v1/staff/patients/{id}/contacts");
        let answers = join_all(addresses.iter().map(|address| {
            call(
                &app,
                &desk,
                "PATCH",
                &path,
                Some(json!({ "email": address, "verification": verification() })),
            )
        }))
        .await;
        assert!(
            answers.iter().all(|(s, _)| *s == 200),
            "seed {seed}: {answers:?}"
        );
        // Applied one after another, each change tells the address it
        // replaced: the told addresses are the first one and all but the
        // last change, each exactly once — a lost update would tell one twice.
        let told: Vec<String> = app
            .messages(500)
            .await
            .into_iter()
            .filter(|m| {
                m.kind == carekey_domain::message::MessageKind::ContactChanged
                    && (m.recipient == first || addresses.contains(&m.recipient))
            })
            .map(|m| m.recipient)
            .collect();
        let distinct: BTreeSet<_> = told.iter().cloned().collect();
        assert_eq!(told.len(), changes, "seed {seed}: {told:?}");
        assert_eq!(distinct.len(), changes, "seed {seed}: {told:?}");
        let (_, record) = call(
            &app,
            &desk,
            "GET",
            &format!("/api/v1/staff/patients/{id}"),
            None,
        )
        .await;
        let last = record["portal"]["contacts"]["email"]["value"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            !distinct.contains(&last),
            "seed {seed}: the final address was replaced"
        );
        assert!(
            addresses.contains(&last) && distinct.contains(&first),
            "seed {seed}"
        );
    }
}

async fn concurrent_unlocks_and_sign_ins_agree(app: TestApp) {
    let desk = staff(&app, "clerk", StaffRole::FrontDesk).await;
    for seed in SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let username = format!("locked{seed}");
        app.patient(&username, "Locked").await;
        let id = patient_id_of(&app, &desk, &format!("MRN-{username}")).await;
        for _ in 0..5 {
            app.sign_in(&username, "not the password").await;
        }
        assert_eq!(
            app.sign_in(&username, crate::helpers::PASSWORD)
                .await
                .status(),
            401,
            "seed {seed}: locked"
        );
        let unlocks = rng.gen_range(2..=8);
        let path = format!("/api/v1/staff/patients/{id}/portal/unlock");
        let answers = join_all((0..unlocks).map(|_| {
            call(
                &app,
                &desk,
                "POST",
                &path,
                Some(json!({ "verification": verification() })),
            )
        }))
        .await;
        assert!(
            answers.iter().all(|(s, _)| *s == 204),
            "seed {seed}: {answers:?}"
        );
        let failures = app
            .count(&format!(
                "SELECT failed_attempts FROM portal_accounts WHERE username = '{username}'"
            ))
            .await;
        assert_eq!(failures, 0, "seed {seed}: an unlock clears the count");
        assert_eq!(
            app.sign_in(&username, crate::helpers::PASSWORD)
                .await
                .status(),
            200,
            "seed {seed}: unlocked"
        );
    }
}
