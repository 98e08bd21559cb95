//! Stock allocation: atomic, never negative, never oversold.

use sqlx::PgConnection;

/// Takes `quantity` units of `sku` for an order if that many are available. Returns false, and
/// changes nothing, if fewer are available. The conditional update is atomic: two processes
/// allocating the last unit cannot both succeed.
pub async fn allocate(
    conn: &mut PgConnection,
    order_id: &str,
    version: u32,
    sku: &str,
    quantity: u32,
) -> sqlx::Result<bool> {
    let quantity = i32::try_from(quantity).unwrap_or(i32::MAX);
    let taken = sqlx::query(
        "UPDATE stock SET available = available - $2, updated_at = now()
         WHERE sku = $1 AND available >= $2",
    )
    .bind(sku)
    .bind(quantity)
    .execute(&mut *conn)
    .await?;
    if taken.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO allocations (order_id, version, sku, quantity) VALUES ($1, $2, $3, $4)",
    )
    .bind(order_id)
    .bind(version as i32)
    .bind(sku)
    .bind(quantity)
    .execute(conn)
    .await?;
    Ok(true)
}

/// Returns every unreleased allocation of an order to stock. Returns the units released.
pub async fn release_order(conn: &mut PgConnection, order_id: &str) -> sqlx::Result<i64> {
    let released: Vec<(String, i32)> = sqlx::query_as(
        "UPDATE allocations SET released_at = now()
         WHERE order_id = $1 AND released_at IS NULL RETURNING sku, quantity",
    )
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut total = 0i64;
    for (sku, quantity) in released {
        sqlx::query(
            "UPDATE stock SET available = available + $2, updated_at = now() WHERE sku = $1",
        )
        .bind(&sku)
        .bind(quantity)
        .execute(&mut *conn)
        .await?;
        total += i64::from(quantity);
    }
    Ok(total)
}
