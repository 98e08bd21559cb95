//! Renders the documents of `examples/order.json` against `examples/catalogue.json` with the
//! documents stage's own decision, as the pipeline would issue them, plus the credit note a
//! cancellation would issue and the invoice's voided copy. No broker or database is needed.
//! `scripts/render-samples` turns them into the PNGs in `docs/images/`.
//!
//! ```sh
//! cargo run --example render_documents -- target/samples
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{TimeZone, Utc};
use fulfilment::domain::documents::layout::VoidMark;
use fulfilment::domain::events::{GoodsPrepared, Payload, PickLine};
use fulfilment::domain::{Order, OrderState};
use fulfilment::settings::Settings;
use fulfilment::stages::documents::Documents;
use fulfilment::stages::reference::{CustomerDetails, CustomerRecord};
use fulfilment::stages::view::Current;
use fulfilment::stages::{Effect, Input, OrderView, Reference, Stage, credit};

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or("target/samples".into()));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let catalogue = fulfilment::seed::read(Path::new("examples/catalogue.json"))?;
    let order: Order = serde_json::from_str(&std::fs::read_to_string("examples/order.json")?)?;

    let mut refs = Reference {
        products: catalogue
            .products
            .iter()
            .map(|p| (p.sku.clone(), p.clone()))
            .collect(),
        terms: catalogue
            .delivery_terms
            .iter()
            .map(|t| (t.code.clone(), t.clone()))
            .collect(),
        ..Reference::default()
    };
    for c in &catalogue.customers {
        let record = CustomerRecord {
            identity_status: c.identity_status,
            erased_at: None,
            payment_terms_days: c.payment_terms_days,
            details: Some(CustomerDetails {
                name: Some(c.name.clone()),
                billing_address: c.billing_address.clone(),
                delivery_address: c.delivery_address.clone(),
            }),
        };
        refs.customers.insert(c.customer_id.clone(), record);
    }

    let mut settings = Settings::load()?;
    settings.stages.seller.name = "Northern Kitchenware Ltd".into();
    settings.stages.seller.address = "1 Market Street, Leeds LS1 6DT, United Kingdom".into();
    settings.stages.seller.tax_number = "GB123456789".into();
    settings.stages.seller.company_number = "01234567".into();
    let stage = Documents::new(&settings.stages);

    let mut view = OrderView {
        current: Some(Current {
            state: OrderState::Prepared,
            order: order.clone(),
        }),
        ..OrderView::default()
    };
    let payload = Payload::GoodsPrepared(GoodsPrepared {
        order_id: order.order_id.clone(),
        version: order.version,
        pick_list: order
            .lines
            .iter()
            .map(|l| PickLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect(),
        service_slots: Vec::new(),
        checks: Vec::new(),
        replaces_version: None,
    });
    let now = Utc.with_ymd_and_hms(2026, 11, 20, 10, 15, 0).unwrap();
    let input = Input {
        message_id: "sample",
        payload: &payload,
        event_time: now,
        now,
    };
    let plan = stage.decide(&input, &view, &refs);
    let mut written = Vec::new();
    for effect in &plan.effects {
        if let Effect::Issue(doc) = effect {
            let path = out.join(format!("{}.pdf", doc.content.number));
            std::fs::write(&path, &doc.pdf)?;
            written.push(path);
            view.apply(effect, "sample", &mut refs);
        }
    }
    let cancelled_at = Utc.with_ymd_and_hms(2026, 11, 23, 14, 0, 0).unwrap();
    let credit = credit::for_cancellation(&view, &refs, cancelled_at)
        .context("the order has an invoice to credit")?;
    let path = out.join(format!("{}.pdf", credit.content.number));
    std::fs::write(&path, &credit.pdf)?;
    written.push(path);
    if let Some(invoice) = &view.live_invoice {
        let mark = VoidMark {
            voided_at: cancelled_at,
            replaced_by: None,
            credited_by: Some(credit.content.number.clone()),
        };
        let path = out.join(format!("{}.void.pdf", invoice.number));
        std::fs::write(&path, fulfilment::render::void_copy(invoice, &mark))?;
        written.push(path);
    }
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}
