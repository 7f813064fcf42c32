package postgres

// PoolSize is the connection limit of a store's pool, for the tests.
const PoolSize = poolSize
