package e2erooms

import (
	"os"
	"strings"
	"testing"

	"github.com/tributary-hs/tributary/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

// TestPostgres runs every flow of the package against PostgreSQL, each on a
// server with a database of its own. It skips when no PostgreSQL can be had,
// unless TRIBUTARY_REQUIRE_POSTGRES=1.
func TestPostgres(t *testing.T) {
	flows := []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"CreateRoom", createRoomFlow}, {"Membership", membershipFlow}, {"CoreFlow", coreFlows},
		{"TransactionIDs", transactionIDsFlow}, {"MessagesFilterAndLazyLoad", messagesFilterAndLazyLoadFlow},
		{"ContextAndEvent", contextAndEventFlow}, {"ConcurrentSends", concurrentSendsFlow},
		{"Persistence", persistenceFlow}, {"TimestampToEvent", timestampToEventFlow}, {"State", stateFlow},
		{"Relations", relationsFlow}, {"ThreadsPagination", threadsPaginationFlow},
		{"AggregationsRespectVisibility", aggregationsRespectVisibilityFlow}, {"Aliases", aliasesFlow},
		{"Directory", directoryFlow}, {"SpaceHierarchy", spaceHierarchyFlow}, {"Upgrade", upgradeFlows},
		{"HistoryVisibility", historyVisibilityFlow}, {"BadRequests", badRequestsFlow},
	}
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) {
			url := pgtest.URL(t)
			srv := startServer(t, "--database-url", url)
			if !strings.Contains(srv.Logs(), `"database":"postgres"`) {
				t.Fatalf("server does not report a PostgreSQL backend:\n%s", srv.Logs())
			}
			f.run(t, &env{srv: srv})
		})
	}
}
