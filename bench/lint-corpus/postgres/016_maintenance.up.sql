-- tidemark:no-transaction
VACUUM FULL orders;
CLUSTER orders USING orders_pkey;
