// Package users owns local accounts: registration, login, access and refresh
// tokens, devices, user-interactive authentication, profiles, account data,
// registration tokens and Synapse-style shared-secret registration.
//
// It imports core/types and the storage interfaces; HTTP handlers in
// core/clientapi and core/admin call it with typed values.
package users
