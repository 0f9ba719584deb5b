package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgbus/msgbus/server/engine"
	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/message"
)

// busCollector turns the engine's own counters into Prometheus metrics
// when /metrics is scraped. Nothing is counted for Prometheus on the
// fan-out path: the hub already keeps its atomics, and this reads them.
// No metric has a per-channel label.
type busCollector struct{ s *Server }

var (
	descPublished = prometheus.NewDesc("msgbus_messages_published_total",
		"Messages published on this node.", nil, nil)
	descDelivered = prometheus.NewDesc("msgbus_deliveries_total",
		"Messages queued for a subscriber on this node, one per subscriber reached.", nil, nil)
	descSlow = prometheus.NewDesc("msgbus_slow_disconnects_total",
		"Subscribers dropped because their queue overflowed (too slow to keep up).", nil, nil)
	descSubscribers = prometheus.NewDesc("msgbus_subscribers",
		"Live subscriptions (sessions) on this node, by kind: multipart, sse, websocket.", []string{"kind"}, nil)
	descChannels = prometheus.NewDesc("msgbus_channels",
		"Channels (and the root) with a subscriber on this node.", nil, nil)
	descHistoryMessages = prometheus.NewDesc("msgbus_history_messages",
		"Messages retained in history (with Redis: the whole bus's).", nil, nil)
	descHistoryBytes = prometheus.NewDesc("msgbus_history_bytes",
		"Bytes of the messages retained in history (with Redis: the whole bus's).", nil, nil)
	descReady = prometheus.NewDesc("msgbus_ready",
		"1 while the server takes publishes (its store or Redis usable, not shutting down), else 0.", nil, nil)
	descFeedGaps = prometheus.NewDesc("msgbus_redis_feed_gaps_total",
		"Breaks in this node's Redis feed: filled from history, or lost (its streams ended).", []string{"result"}, nil)
	descRedisErrors = prometheus.NewDesc("msgbus_redis_errors_total",
		"Calls to Redis that failed for want of Redis (unreachable, timed out), not for a refused request.", nil, nil)
)

// redisErrorer is the Redis engine's count of failed calls.
type redisErrorer interface {
	RedisErrors() uint64
}

// feedGapper is the Redis engine's ability to count breaks in its feed.
type feedGapper interface {
	FeedGaps() (filled, lost uint64)
}

func (busCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPublished, descDelivered, descSlow, descSubscribers,
		descChannels, descHistoryMessages, descHistoryBytes, descReady, descFeedGaps, descRedisErrors} {
		ch <- d
	}
}

func (c busCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.s.engine
	if m, ok := e.(*meteredEngine); ok {
		e = m.Engine
	}
	st := e.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(descPublished, st.Published)
	counter(descDelivered, st.Delivered)
	counter(descSlow, st.SlowDisconnects)
	for _, kind := range []string{kindMultipart, kindSSE, kindWebSocket} {
		gauge(descSubscribers, float64(c.s.sessionsOfKind(kind)), kind)
	}
	gauge(descChannels, float64(st.Channels))
	gauge(descHistoryMessages, float64(st.History.Messages))
	gauge(descHistoryBytes, float64(st.History.Bytes))
	ready := 1.0
	if c.s.notReady() != nil {
		ready = 0
	}
	gauge(descReady, ready)
	if g, ok := e.(feedGapper); ok {
		filled, lost := g.FeedGaps()
		counter(descFeedGaps, filled, "filled")
		counter(descFeedGaps, lost, "lost")
	}
	if r, ok := e.(redisErrorer); ok {
		counter(descRedisErrors, r.RedisErrors())
	}
}

// metrics are the figures the engine does not keep itself, counted once
// per publish or per subscribe, never per delivery.
type metrics struct {
	publishDuration prometheus.Histogram
	resumes         *prometheus.CounterVec
	recovered       prometheus.Counter // resumes.WithLabelValues("recovered"), looked up once
	notRecovered    prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		publishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "msgbus_publish_duration_seconds",
			Help: "Time from a publish reaching the engine to its being queued for every subscriber " +
				"(and in history: on disk with --store, in Redis with --redis).",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgbus_resumes_total",
			Help: "Subscriptions that resumed from history: recovered (every missed message replayed) or not_recovered.",
		}, []string{"result"}),
	}
	m.recovered = m.resumes.WithLabelValues("recovered")
	m.notRecovered = m.resumes.WithLabelValues("not_recovered")
	return m
}

// meteredEngine is an engine.Engine that times publishes and counts
// resumes: a clock read and a histogram observation per publish, a counter
// per resume; fan-out is untouched.
type meteredEngine struct {
	engine.Engine
	m *metrics
}

var _ engine.Engine = (*meteredEngine)(nil)

func (e *meteredEngine) Publish(msg *message.Message) (engine.Published, error) {
	start := time.Now()
	p, err := e.Engine.Publish(msg)
	if err == nil {
		e.m.publishDuration.Observe(time.Since(start).Seconds())
	}
	return p, err
}

func (e *meteredEngine) Subscribe(channel string, opts hub.SubscribeOptions, resume *engine.Resume) (*hub.Subscription, engine.Resumed, error) {
	sub, r, err := e.Engine.Subscribe(channel, opts, resume)
	if err == nil && resume != nil {
		if r.Recovered {
			e.m.recovered.Inc()
		} else {
			e.m.notRecovered.Inc()
		}
	}
	return sub, r, err
}
