"""The exercises of each lesson and their properties, one module per lesson (registered in
lesson order by `minilm.check.catalogue`)."""
