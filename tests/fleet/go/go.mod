module aegis.example/fleetworker

go 1.22

require aegis.example/aegis v0.0.0

replace aegis.example/aegis => ../../../aegis-ffi/go
