// Package httpx is the HTTP edge shared by every API surface: Matrix error
// rendering, JSON decoding with the spec's errcodes (every body checked by
// core/canonicaljson before it is decoded), access-token authentication,
// CORS, body limits, request logs, metrics and rate limits. It is, with the
// handler packages, the only place gin is used. Of this module it imports
// only the leaves core/types, core/config and core/canonicaljson
// (internal/archtest's httpx-leaf rule): the services that authenticate hand
// it a types.Principal through its Authenticator interface.
package httpx
