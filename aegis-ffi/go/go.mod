module aegis.example/aegis

go 1.22
