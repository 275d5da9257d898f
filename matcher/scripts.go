package matcher

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/apply.lua
	applySrc string
	//go:embed lua/account.lua
	accountSrc string
	//go:embed lua/clusters.lua
	clustersSrc string

	applyScript    = redis.NewScript(applySrc)
	accountScript  = redis.NewScript(accountSrc)
	clustersScript = redis.NewScript(clustersSrc)
)
