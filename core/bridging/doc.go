// Package bridging is the appservice contract: what an application service
// may do that a user may not, each rule in one method so that an HTTP
// appservice (appservice/routes, core/clientapi), a bridge plugin
// (bridges/manager) and `tributary import` get the same answers.
//
//   - Masquerade: act as a registered user of the namespace (?user_id=), on
//     one of its devices (MSC3202 ?device_id=), with that account's
//     suspension and lock.
//   - Send: a message or state event; only an appservice may choose its
//     origin_server_ts (?ts=, timestamp massaging); suspended and locked
//     accounts may not send.
//   - BatchSend: com.beeper.batch_sending — every sender in the namespace and
//     free to send, forward or backward (forward_if_no_messages), the event
//     IDs the bridge chose as aliases, send_notification, and mark_read_by's
//     read receipt after the commit.
//   - Import: a forward batch of `tributary import`, by BatchSend's rules
//     but that a sender may also be an active local account (the people an
//     import maps to their accounts); reached only by the server operator.
//
// It imports core/rooms, core/users and core/types. What registrations say
// comes in through Namespaces, which appservice/registry implements and
// cmd/tributary hands over; core never imports appservice.
package bridging
