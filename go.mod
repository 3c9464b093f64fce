module github.com/leasehold-go/leasehold

go 1.26

require github.com/benbjohnson/clock v1.3.5

require gopkg.in/yaml.v3 v3.0.1
