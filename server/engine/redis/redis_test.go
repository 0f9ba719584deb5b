package redis_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/msgbus/msgbus/server/engine"
	"github.com/msgbus/msgbus/server/engine/enginetest"
	"github.com/msgbus/msgbus/server/engine/redis"
	"github.com/msgbus/msgbus/server/engine/redis/redistest"
	"github.com/msgbus/msgbus/server/history"
	"github.com/msgbus/msgbus/server/hub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var _ = os.Getenv

func TestConformance(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	enginetest.Run(t, func(t *testing.T, lim history.Limits) engine.Engine {
		e, err := redis.New(redis.Config{
			URL: rs.URL(), Prefix: redistest.Prefix(t),
			Hub: hub.Config{MaxQueueBytes: 64 << 20}, Limits: lim,
		})
		if err != nil {
			t.Fatal(err)
		}
		return e
	})
}
