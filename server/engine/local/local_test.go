package local_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/msgbus/msgbus/server/engine"
	"github.com/msgbus/msgbus/server/engine/enginetest"
	"github.com/msgbus/msgbus/server/engine/local"
	"github.com/msgbus/msgbus/server/history"
	"github.com/msgbus/msgbus/server/hub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformanceMemory(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, lim history.Limits) engine.Engine {
		return local.New(local.Config{Hub: hub.Config{MaxQueueBytes: 64 << 20}, Limits: lim})
	})
}

func TestConformanceLog(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, lim history.Limits) engine.Engine {
		st, err := history.OpenLog(t.TempDir(), lim)
		if err != nil {
			t.Fatal(err)
		}
		return local.New(local.Config{Hub: hub.Config{MaxQueueBytes: 64 << 20}, Store: st})
	})
}
